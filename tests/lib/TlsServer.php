<?php

declare(strict_types=1);

namespace Aggregator\Tests;

/**
 * tests/fixtures/http/tls_server.php running: an HTTPS server with a
 * self-signed certificate (CN=localhost, made here) at $url, until stop()
 * or the end of the object.
 */
final class TlsServer
{
    /** @var resource|null */
    private $process;

    private function __construct($process, public readonly string $url, private readonly string $pem)
    {
        $this->process = $process;
    }

    public static function start(): self
    {
        $key = openssl_pkey_new(['private_key_bits' => 2048]);
        $cert = openssl_csr_sign(openssl_csr_new(['commonName' => 'localhost'], $key), null, $key, 1, ['digest_alg' => 'sha256']);
        openssl_x509_export($cert, $certPem);
        openssl_pkey_export($key, $keyPem);
        $pem = (string)tempnam(sys_get_temp_dir(), 'tls');
        file_put_contents($pem, $certPem . $keyPem);
        $process = proc_open([PHP_BINARY, ROOT . '/tests/fixtures/http/tls_server.php', $pem],
            [0 => ['file', '/dev/null', 'r'], 1 => ['pipe', 'w'], 2 => ['file', '/dev/null', 'w']], $pipes);
        if ($process === false) {
            throw new \RuntimeException('cannot start tls_server.php');
        }
        $url = trim((string)fgets($pipes[1]));
        fclose($pipes[1]);
        if (!str_starts_with($url, 'https://')) {
            proc_terminate($process, 9);
            unlink($pem);
            throw new \RuntimeException('tls_server.php did not start');
        }
        return new self($process, $url, $pem);
    }

    public function stop(): void
    {
        if ($this->process !== null) {
            proc_terminate($this->process, 9);
            proc_close($this->process);
            $this->process = null;
            @unlink($this->pem);
        }
    }

    public function __destruct()
    {
        $this->stop();
    }
}

<?php

declare(strict_types=1);

namespace Aggregator\Tests;

/**
 * A server script of tests/fixtures/http/ running (`php SCRIPT ARGS`, which
 * prints its URL on its first line), until stop() or the end of the object:
 *
 *   - ScriptServer::tls(): tls_server.php, HTTPS with a self-signed certificate (CN=localhost) made here;
 *   - ScriptServer::delay(): delay_server.php, every answer after ?ms=..., any number at once.
 */
final class ScriptServer
{
    /** @var resource|null */
    private $process;

    /** @param list<string> $files removed when the server stops */
    private function __construct($process, public readonly string $url, private readonly array $files)
    {
        $this->process = $process;
    }

    public static function tls(): self
    {
        $key = openssl_pkey_new(['private_key_bits' => 2048]);
        $cert = openssl_csr_sign(openssl_csr_new(['commonName' => 'localhost'], $key), null, $key, 1, ['digest_alg' => 'sha256']);
        openssl_x509_export($cert, $certPem);
        openssl_pkey_export($key, $keyPem);
        $pem = (string)tempnam(sys_get_temp_dir(), 'tls');
        file_put_contents($pem, $certPem . $keyPem);
        return self::start('tls_server.php', [$pem], [$pem]);
    }

    public static function delay(): self
    {
        return self::start('delay_server.php');
    }

    /**
     * @param list<string> $args
     * @param list<string> $files
     */
    private static function start(string $script, array $args = [], array $files = []): self
    {
        $process = proc_open([PHP_BINARY, ROOT . "/tests/fixtures/http/$script", ...$args],
            [0 => ['file', '/dev/null', 'r'], 1 => ['pipe', 'w'], 2 => ['file', '/dev/null', 'w']], $pipes);
        if ($process === false) {
            throw new \RuntimeException("cannot start $script");
        }
        $url = trim((string)fgets($pipes[1]));
        fclose($pipes[1]);
        $server = new self($process, $url, $files);
        if (!preg_match('~^https?://~', $url)) {
            $server->stop();
            throw new \RuntimeException("$script did not start");
        }
        return $server;
    }

    public function stop(): void
    {
        if ($this->process !== null) {
            proc_terminate($this->process, 9);
            proc_close($this->process);
            $this->process = null;
            array_map('unlink', array_filter($this->files, 'is_file'));
        }
    }

    public function __destruct()
    {
        $this->stop();
    }
}

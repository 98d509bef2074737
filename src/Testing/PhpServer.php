<?php

declare(strict_types=1);

namespace Aggregator\Testing;

/**
 * PHP's built-in web server (`php -S 127.0.0.1:PORT router.php`) on a free
 * port: a fake supplier API for a translator's tests.
 *
 *     $supplier = PhpServer::start(__DIR__ . '/fake_supplier.php');
 *     $supplier->url;    // http://127.0.0.1:PORT
 *     $supplier->stop(); // or let it go out of scope
 *
 * It serves up to four requests at once (PHP_CLI_SERVER_WORKERS), so a slow
 * endpoint does not hold up the next test. The router runs in its own
 * directory.
 *
 * Those four are child processes of `php -S`, which does not end them
 * when it is killed: stop() stops the server, kills every child it has,
 * then the server, so no PHP process outlives the test. It stays in the
 * test runner's process group, so a Ctrl-C of phpunit ends it too. Finding
 * the children takes Linux's /proc and the posix extension; without them
 * it serves one request at a time, in one process, and there is nothing
 * to leave behind.
 */
final class PhpServer
{
    /** Concurrent requests, each in a child process, when they can be found again (workers()). */
    private const WORKERS = 4;

    /** @var resource|null */
    private $process;

    private function __construct(public readonly string $url, $process, private readonly string $logFile)
    {
        $this->process = $process;
    }

    /** Start serving $router and wait until the port accepts connections. */
    public static function start(string $router): self
    {
        $lastError = '';
        for ($attempt = 0; $attempt < 3; $attempt++) {
            $port = self::freePort();
            $log = (string)tempnam(sys_get_temp_dir(), 'phps');
            $process = proc_open(
                [PHP_BINARY, '-S', "127.0.0.1:$port", $router],
                [0 => ['file', '/dev/null', 'r'], 1 => ['file', $log, 'w'], 2 => ['file', $log, 'a']],
                $pipes,
                dirname($router),
                (self::canFindChildren() ? ['PHP_CLI_SERVER_WORKERS' => (string)self::WORKERS] : []) + getenv(),
            );
            if ($process === false) {
                throw new \RuntimeException("cannot start php -S for $router");
            }
            $server = new self("http://127.0.0.1:$port", $process, $log);
            $deadline = microtime(true) + 5;
            while (microtime(true) < $deadline && proc_get_status($process)['running']) {
                $socket = @fsockopen('127.0.0.1', $port, $errno, $errstr, 0.2);
                if ($socket !== false) {
                    fclose($socket);
                    $server->awaitWorkers($deadline);
                    return $server;
                }
                usleep(20_000);
            }
            $lastError = $server->log();
            $server->stop(); // the port was taken meanwhile, or php -S failed: try again
        }
        throw new \RuntimeException("php -S $router did not start: $lastError");
    }

    /** What the server printed (its access log and errors). */
    public function log(): string
    {
        return (string)@file_get_contents($this->logFile);
    }

    /** Stop the server and its children; nothing of it runs once this returns. */
    public function stop(): void
    {
        if ($this->process === null) {
            return;
        }
        $pid = (int)proc_get_status($this->process)['pid'];
        $children = [];
        if (self::canFindChildren()) {
            proc_terminate($this->process, \defined('SIGSTOP') ? SIGSTOP : 19); // it forks no child while its children are found
            $children = self::children($pid);
            foreach ($children as $child) {
                posix_kill($child, \defined('SIGKILL') ? SIGKILL : 9);
            }
        }
        proc_terminate($this->process, 9);
        proc_close($this->process);
        self::awaitGone($children); // a SIGKILL is delivered, not done: wait until they are dead
        $this->process = null;
        @unlink($this->logFile);
    }

    /**
     * The pids of the server's child processes (its PHP_CLI_SERVER_WORKERS).
     *
     * @return list<int>
     */
    public function workers(): array
    {
        return $this->process === null ? [] : self::children((int)proc_get_status($this->process)['pid']);
    }

    public function __destruct()
    {
        $this->stop();
    }

    /**
     * Wait until the server's PHP_CLI_SERVER_WORKERS children are forked
     * (the port accepts before they are), so a test that counts them or
     * sends WORKERS calls at once finds them all.
     */
    private function awaitWorkers(float $deadline): void
    {
        while (self::canFindChildren() && count($this->workers()) < self::WORKERS && microtime(true) < $deadline) {
            usleep(5_000);
        }
    }

    /**
     * Wait (at most 2 s) until every process of $pids is dead: gone from
     * /proc, or a zombie waiting for init.
     *
     * @param list<int> $pids
     */
    private static function awaitGone(array $pids): void
    {
        $deadline = microtime(true) + 2;
        foreach ($pids as $pid) {
            while (microtime(true) < $deadline) {
                $stat = @file_get_contents("/proc/$pid/stat");
                if ($stat === false || (substr($stat, (int)strrpos($stat, ')') + 2, 1)) === 'Z') {
                    break;
                }
                usleep(2_000);
            }
        }
    }

    private static function canFindChildren(): bool
    {
        return function_exists('posix_kill') && is_readable('/proc/self/stat');
    }

    /**
     * The live child processes of $parent, from /proc/PID/stat (field 4,
     * the parent pid, after the ")" that ends the command name).
     *
     * @return list<int>
     */
    private static function children(int $parent): array
    {
        $children = [];
        foreach (glob('/proc/[0-9]*/stat') ?: [] as $file) {
            $stat = (string)@file_get_contents($file);
            $fields = explode(' ', substr($stat, (int)strrpos($stat, ')') + 2));
            if (($fields[1] ?? '') === (string)$parent && ($fields[0] ?? 'Z') !== 'Z') {
                $children[] = (int)basename(dirname($file));
            }
        }
        return $children;
    }

    private static function freePort(): int
    {
        $socket = stream_socket_server('tcp://127.0.0.1:0', $errno, $errstr);
        if ($socket === false) {
            throw new \RuntimeException("no free port: $errstr");
        }
        $name = (string)stream_socket_get_name($socket, false);
        fclose($socket);
        return (int)substr($name, strrpos($name, ':') + 1);
    }
}

<?php

declare(strict_types=1);

namespace Aggregator\Tests;

use Aggregator\Testing\PhpServer;
use PHPUnit\Framework\TestCase;

/** Aggregator\Testing\PhpServer: a fake supplier for translators' tests that leaves no process behind. */
final class PhpServerTest extends TestCase
{
    /** @testdox stop() ends the server and its PHP_CLI_SERVER_WORKERS children: no process of it is left */
    public function testStopLeavesNoProcess(): void
    {
        if (!is_readable('/proc/self/stat') || !function_exists('posix_kill')) {
            self::markTestSkipped('needs /proc and posix: without them PhpServer runs no children');
        }
        $server = PhpServer::start(ROOT . '/tests/fixtures/supplier.php');
        self::assertSame(200, \Aggregator\fetch("$server->url/echo")->status);
        $port = (string)parse_url($server->url, PHP_URL_PORT);
        self::assertCount(4, $server->workers(), 'four children serve at once');
        self::assertCount(5, self::serving($port), 'the server and its children');
        $server->stop();
        self::assertSame([], self::serving($port), 'none left');

        $server = PhpServer::start(ROOT . '/tests/fixtures/supplier.php');
        $port = (string)parse_url($server->url, PHP_URL_PORT);
        self::assertCount(5, self::serving($port));
        unset($server); // the destructor stops it too
        self::assertSame([], self::serving($port), 'none left after the destructor');
    }

    /**
     * The live (not zombie) processes whose command line serves 127.0.0.1:$port.
     *
     * @return list<int>
     */
    private static function serving(string $port): array
    {
        $pids = [];
        foreach (glob('/proc/[0-9]*/cmdline') ?: [] as $file) {
            $argv = explode("\0", (string)@file_get_contents($file));
            if (in_array("127.0.0.1:$port", $argv, true) && in_array('-S', $argv, true)) {
                $stat = (string)@file_get_contents(dirname($file) . '/stat');
                if (substr($stat, (int)strrpos($stat, ')') + 2, 1) !== 'Z') {
                    $pids[] = (int)basename(dirname($file));
                }
            }
        }
        return $pids;
    }
}

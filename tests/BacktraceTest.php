<?php

declare(strict_types=1);

namespace Aggregator\Tests;

use Aggregator\Backtrace;
use PHPUnit\Framework\TestCase;

/**
 * Backtrace: the format of the block, and SIGUSR1 on real processes run the
 * way exec mode runs them (with the prepend file): the block comes, the
 * script goes on.
 */
final class BacktraceTest extends TestCase
{
    private const SIGUSR1 = 10; // SIGUSR1 on Linux; the constant needs pcntl

    /** @testdox each line is a function and the place inside it; #0 is where the signal came */
    public function testEachLineIsAFunctionAndThePlaceInsideIt(): void
    {
        // debug_backtrace() in the handler: frame 0 is the handler, called
        // from the interrupted line; each frame's file:line is its call site.
        $trace = [
            ['file' => '/a/slow.php', 'line' => 15, 'function' => 'onSignal', 'class' => Backtrace::class, 'type' => '::'],
            ['file' => '/a/slow.php', 'line' => 22, 'function' => 'wait_for_supplier'],
            ['function' => '{closure}'], // called by array_map
            ['file' => '/a/Worker.php', 'line' => 148, 'function' => 'array_map'],
            ['file' => '/a/Worker.php', 'line' => 70, 'function' => 'runJob', 'class' => 'Aggregator\Worker', 'type' => '->'],
        ];
        $lines = [
            '#0 /a/slow.php:15 wait_for_supplier()',
            '#1 /a/slow.php:22 {closure}()',
            '#2 [internal] array_map()',
            '#3 /a/Worker.php:148 Aggregator\Worker->runJob()',
            '#4 /a/Worker.php:70 {main}',
        ];
        self::assertSame($lines, Backtrace::lines($trace));
        self::assertSame(Backtrace::BEGIN . "\n" . implode("\n", $lines) . "\n" . Backtrace::END . "\n", Backtrace::block($trace));
    }

    /** @testdox a deep stack is cut after MAX_FRAMES frames */
    public function testADeepStackIsCutAfterMaxFrames(): void
    {
        $trace = array_fill(0, Backtrace::MAX_FRAMES + 10, ['file' => '/r.php', 'line' => 3, 'function' => 'recurse']);
        $lines = Backtrace::lines($trace);
        self::assertSame(Backtrace::MAX_FRAMES + 1, count($lines));
        self::assertSame('... 10 more frames', $lines[Backtrace::MAX_FRAMES]);
    }

    /**
     * @requires function pcntl_signal
     * @testdox SIGUSR1 makes an unmodified exec script print its backtrace and go on
     */
    public function testSigusr1MakesAnExecScriptPrintItsBacktraceAndGoOn(): void
    {
        $start = microtime(true);
        [$process, $stdout, $stderrFile] = self::start('pool/testdata/slow_exec.php', '{"seconds":0.8}');
        usleep(200_000);
        proc_terminate($process, self::SIGUSR1);
        $output = stream_get_contents($stdout);
        $code = proc_close($process);
        $stderr = (string)file_get_contents($stderrFile);
        unlink($stderrFile);
        self::assertSame(0, $code, "exit code; stderr: $stderr");
        self::assertSame('{"seconds":0.8}' . "\n", $output);
        self::assertTrue(microtime(true) - $start >= 0.8, 'the signal cut the wait short');
        $file = realpath(ROOT . '/pool/testdata/slow_exec.php');
        self::assertTrue(
            preg_match('/^' . Backtrace::BEGIN . '\n#0 ' . preg_quote($file, '/') . ':\d+ wait_for_supplier\(\)\n#1 ' . preg_quote($file, '/') . ':\d+ \{main\}\n' . Backtrace::END . '$/m', $stderr) === 1,
            "stderr: $stderr",
        );
    }

    /**
     * @requires function pcntl_signal
     * @testdox the demo timeout-* suppliers keep sleeping through backtrace signals
     */
    public function testTheDemoTimeoutSuppliersKeepSleepingThroughBacktraceSignals(): void
    {
        [$process, $stdout, $stderrFile] = self::start('script/items.php', '{"class":"timeout-1"}');
        for ($i = 0; $i < 3; $i++) {
            usleep(300_000);
            proc_terminate($process, self::SIGUSR1);
        }
        usleep(300_000);
        $running = proc_get_status($process)['running'];
        proc_terminate($process, 9);
        proc_close($process);
        $stderr = (string)file_get_contents($stderrFile);
        unlink($stderrFile);
        self::assertTrue($running, "timeout-1 stopped sleeping after a signal; stderr: $stderr");
        self::assertSame(3, substr_count($stderr, Backtrace::END), $stderr);
        self::assertStringContainsString('Aggregator\Demo\Demo::sleepFor()', $stderr);
        self::assertStringContainsString('Aggregator\Demo\Demo::items()', $stderr);
    }

    /**
     * Start a PHP script with the prepend file, $input on stdin, stderr to a file.
     *
     * @return array{0: resource, 1: resource, 2: string} process, stdout pipe, stderr file
     */
    private static function start(string $script, string $input): array
    {
        $stderr = (string)tempnam(sys_get_temp_dir(), 'bt');
        $process = proc_open(
            [PHP_BINARY, '-d', 'auto_prepend_file=' . ROOT . '/src/backtrace_prepend.php', '-d', 'display_errors=stderr', ROOT . "/$script"],
            [0 => ['pipe', 'r'], 1 => ['pipe', 'w'], 2 => ['file', $stderr, 'w']],
            $pipes,
            ROOT,
            ['DEMO_DELAY_MS' => '0'] + getenv(),
        );
        fwrite($pipes[0], $input . "\n");
        fclose($pipes[0]);
        // SIGUSR1 kills a PHP process until its handler is in: wait for the ready line.
        $deadline = microtime(true) + 5;
        while (!str_contains((string)file_get_contents($stderr), Backtrace::READY)) {
            if (microtime(true) >= $deadline) {
                self::fail('no ' . Backtrace::READY . ' line within 5 s');
            }
            usleep(10_000);
        }
        return [$process, $pipes[1], $stderr];
    }
}

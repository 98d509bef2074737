<?php

declare(strict_types=1);

use Aggregator\Backtrace;
use Aggregator\Tests\Assert;

/**
 * Backtrace: the format of the block, and SIGUSR1 on real processes run the
 * way exec mode runs them (with the prepend file): the block comes, the
 * script goes on.
 */

const BACKTRACE_SIGUSR1 = 10; // SIGUSR1 on Linux; the constant needs pcntl

/**
 * Start a PHP script with the prepend file, $input on stdin, stderr to a file.
 *
 * @return array{0: resource, 1: resource, 2: string} process, stdout pipe, stderr file
 */
function backtrace_start(string $script, string $input): array
{
    $stderr = (string)tempnam(sys_get_temp_dir(), 'bt');
    $process = proc_open(
        [PHP_BINARY, '-d', 'auto_prepend_file=' . ROOT . '/src/backtrace_prepend.php', '-d', 'display_errors=stderr', ROOT . "/$script"],
        [0 => ['pipe', 'r'], 1 => ['pipe', 'w'], 2 => ['file', $stderr, 'w']],
        $pipes,
        ROOT,
        getenv() + ['DEMO_DELAY_MS' => '0'],
    );
    fwrite($pipes[0], $input . "\n");
    fclose($pipes[0]);
    // SIGUSR1 kills a PHP process until its handler is in: wait for the ready line.
    $deadline = microtime(true) + 5;
    while (!str_contains((string)file_get_contents($stderr), Backtrace::READY)) {
        Assert::true(microtime(true) < $deadline, 'no ' . Backtrace::READY . ' line within 5 s');
        usleep(10_000);
    }
    return [$process, $pipes[1], $stderr];
}

return [
    'each line is a function and the place inside it; #0 is where the signal came' => function (): void {
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
        Assert::same($lines, Backtrace::lines($trace));
        Assert::same(Backtrace::BEGIN . "\n" . implode("\n", $lines) . "\n" . Backtrace::END . "\n", Backtrace::block($trace));
    },
    'a deep stack is cut after MAX_FRAMES frames' => function (): void {
        $trace = array_fill(0, Backtrace::MAX_FRAMES + 10, ['file' => '/r.php', 'line' => 3, 'function' => 'recurse']);
        $lines = Backtrace::lines($trace);
        Assert::same(Backtrace::MAX_FRAMES + 1, count($lines));
        Assert::same('... 10 more frames', $lines[Backtrace::MAX_FRAMES]);
    },
    'SIGUSR1 makes an unmodified exec script print its backtrace and go on' => function (): void {
        if (!function_exists('pcntl_signal')) {
            return; // no pcntl: nothing installs the handler
        }
        $start = microtime(true);
        [$process, $stdout, $stderrFile] = backtrace_start('pool/testdata/slow_exec.php', '{"seconds":0.8}');
        usleep(200_000);
        proc_terminate($process, BACKTRACE_SIGUSR1);
        $output = stream_get_contents($stdout);
        $code = proc_close($process);
        $stderr = (string)file_get_contents($stderrFile);
        unlink($stderrFile);
        Assert::same(0, $code, "exit code; stderr: $stderr");
        Assert::same('{"seconds":0.8}' . "\n", $output);
        Assert::true(microtime(true) - $start >= 0.8, 'the signal cut the wait short');
        $file = realpath(ROOT . '/pool/testdata/slow_exec.php');
        Assert::true(
            preg_match('/^' . Backtrace::BEGIN . '\n#0 ' . preg_quote($file, '/') . ':\d+ wait_for_supplier\(\)\n#1 ' . preg_quote($file, '/') . ':\d+ \{main\}\n' . Backtrace::END . '$/m', $stderr) === 1,
            "stderr: $stderr",
        );
    },
    'the demo timeout-* suppliers keep sleeping through backtrace signals' => function (): void {
        if (!function_exists('pcntl_signal')) {
            return;
        }
        [$process, $stdout, $stderrFile] = backtrace_start('script/items.php', '{"class":"timeout-1"}');
        for ($i = 0; $i < 3; $i++) {
            usleep(300_000);
            proc_terminate($process, BACKTRACE_SIGUSR1);
        }
        usleep(300_000);
        $running = proc_get_status($process)['running'];
        proc_terminate($process, 9);
        proc_close($process);
        $stderr = (string)file_get_contents($stderrFile);
        unlink($stderrFile);
        Assert::true($running, "timeout-1 stopped sleeping after a signal; stderr: $stderr");
        Assert::same(3, substr_count($stderr, Backtrace::END), $stderr);
        Assert::contains('Aggregator\Demo\Demo::sleepFor()', $stderr);
        Assert::contains('Aggregator\Demo\Demo::items()', $stderr);
    },
];

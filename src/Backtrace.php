<?php

declare(strict_types=1);

namespace Aggregator;

/**
 * Backtrace on demand: after install(), SIGUSR1 makes the process write the
 * PHP stack of what it is running to stderr, as one block:
 *
 *     AGGREGATOR-BACKTRACE-BEGIN
 *     #0 /app/script/lib/Acme.php:42 Acme\Client->fetch()
 *     #1 /app/script/handlers.php:17 {closure}()
 *     #2 /app/worker.php:35 {main}
 *     AGGREGATOR-BACKTRACE-END
 *
 * Each line is a function and the place (file:line) inside it where the code
 * was when the signal arrived; #0 is the innermost. A worker with jobs in
 * flight writes one section per job, each headed by a line "job <id>": the
 * job running now (its stack up to its Fiber) and each job waiting in
 * fetch() (its suspended Fiber's stack, from ReflectionFiber::getTrace()). The aggregator sends the
 * signal to a job that runs longer than aggregator.pool.slowlog, and just
 * before it kills a job whose time ran out, and logs the block tagged with
 * the session, task and supplier (see docs/diagnostics.md). The job goes on.
 *
 * install() announces itself with the line AGGREGATOR-BACKTRACE-READY on
 * stderr: the aggregator sends SIGUSR1 only to a process that did, because
 * for any other PHP process SIGUSR1 is fatal. Needs the pcntl extension
 * (Debian's php-cli has it); without it install() does nothing.
 *
 * The handler runs between two PHP statements, so a process blocked inside
 * one C call (a long curl_exec, fread on a pipe) answers only once that call
 * returns. A signal cuts sleep()/usleep() short: code that must wait a given
 * time loops until it has passed.
 */
final class Backtrace
{
    public const READY = 'AGGREGATOR-BACKTRACE-READY';
    public const BEGIN = 'AGGREGATOR-BACKTRACE-BEGIN';
    public const END = 'AGGREGATOR-BACKTRACE-END';

    /** Frames written at most; deeper stacks end with a "... N more frames" line. */
    public const MAX_FRAMES = 100;

    /** @var (\Closure(): array<int, ?\Fiber>)|null the worker's jobs in flight: id => Fiber, null for the running one */
    private static ?\Closure $jobs = null;

    /**
     * Install the SIGUSR1 handler and say so on stderr (once is enough;
     * again is harmless).
     *
     * @return bool whether it is installed (false without pcntl)
     */
    public static function install(?\Closure $jobs = null): bool
    {
        self::$jobs = $jobs;
        if (!function_exists('pcntl_async_signals') || !function_exists('pcntl_signal')) {
            return false;
        }
        pcntl_async_signals(true);
        if (!pcntl_signal(SIGUSR1, [self::class, 'onSignal'])) {
            return false;
        }
        @fwrite(STDERR, self::READY . "\n");
        return true;
    }

    /** The SIGUSR1 handler: one write, so no other output can split the block. */
    public static function onSignal(mixed ...$args): void
    {
        $trace = debug_backtrace(DEBUG_BACKTRACE_IGNORE_ARGS);
        $jobs = self::$jobs === null ? [] : (self::$jobs)();
        if ($jobs === []) {
            @fwrite(STDERR, self::block($trace));
            return;
        }
        $lines = [];
        foreach ($jobs as $id => $fiber) {
            $lines[] = "job $id";
            $stack = $fiber === null ? self::fiberPart($trace) : self::waiting((new \ReflectionFiber($fiber))->getTrace(DEBUG_BACKTRACE_IGNORE_ARGS));
            array_push($lines, ...self::lines($stack, false));
        }
        @fwrite(STDERR, self::BEGIN . "\n" . implode("\n", $lines) . "\n" . self::END . "\n");
    }

    /**
     * The part of a trace taken inside a Fiber that is the Fiber's own:
     * up to the Fiber's function, without the worker frames that started it.
     *
     * @param array<int, array<string, mixed>> $trace
     * @return array<int, array<string, mixed>>
     */
    public static function fiberPart(array $trace): array
    {
        foreach ($trace as $i => $frame) {
            if (($frame['class'] ?? '') === 'Fiber' && in_array($frame['function'] ?? '', ['start', 'resume', 'throw'], true)) {
                return array_slice($trace, 0, $i);
            }
        }
        return $trace;
    }

    /**
     * The stack of a job suspended in fetch(), from the translator's call
     * down: #0 is \Aggregator\fetch() (or fetchAll()), #1 where the
     * translator called it; the kit's own frames above are left out.
     *
     * @param array<int, array<string, mixed>> $trace
     * @return array<int, array<string, mixed>>
     */
    public static function waiting(array $trace): array
    {
        foreach ($trace as $i => $frame) {
            if ($i > 0 && !isset($frame['class']) && in_array($frame['function'] ?? '', ['Aggregator\fetch', 'Aggregator\fetchAll'], true)) {
                return array_slice($trace, $i - 1);
            }
        }
        return $trace;
    }

    /**
     * The block for a debug_backtrace() taken in the signal handler: its
     * frame 0 is the handler itself, called from where the code was.
     *
     * @param array<int, array<string, mixed>> $trace
     */
    public static function block(array $trace): string
    {
        return self::BEGIN . "\n" . implode('', array_map(
            static fn (string $line): string => $line . "\n",
            self::lines($trace),
        )) . self::END . "\n";
    }

    /**
     * "#N file:line function()" lines, innermost first. debug_backtrace()
     * gives each function with the place it was called from; here each
     * function gets the place the code is at inside it, which is the call
     * site of the frame before it (frame 0, the handler, gives the place the
     * signal interrupted). The last line is the script's top level, {main},
     * unless $main is false (a Fiber's stack ends at its function).
     *
     * @param array<int, array<string, mixed>> $trace
     * @return string[]
     */
    public static function lines(array $trace, bool $main = true): array
    {
        $trace = array_values($trace);
        $lines = [];
        $count = $main ? count($trace) : count($trace) - 1;
        for ($i = 1; $i <= $count; $i++) {
            if ($i > self::MAX_FRAMES) {
                $lines[] = sprintf('... %d more frames', $count + 1 - $i);
                break;
            }
            $frame = $trace[$i] ?? null;
            $lines[] = sprintf('#%d %s %s', $i - 1, self::place($trace[$i - 1]), $frame === null ? '{main}' : self::callee($frame));
        }
        return $lines;
    }

    /** "file:line" of a frame's call site, or "[internal]" (a callback called by PHP itself). */
    private static function place(array $frame): string
    {
        if (!isset($frame['file'])) {
            return '[internal]';
        }
        return str_replace("\n", ' ', (string)$frame['file']) . ':' . (int)($frame['line'] ?? 0);
    }

    /** "Class->method()", "Class::method()" or "function()". */
    private static function callee(array $frame): string
    {
        $function = (string)($frame['function'] ?? '?');
        if (isset($frame['class'])) {
            $function = $frame['class'] . ($frame['type'] ?? '::') . $function;
        }
        return str_replace("\n", ' ', $function) . '()';
    }
}

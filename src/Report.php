<?php

declare(strict_types=1);

namespace Aggregator;

/**
 * How PHP hands a handler's failure (Failure.php) to the aggregator: the
 * worker sends it in its ERROR frame; an exec script writes it to the
 * report pipe the aggregator gives it (fd AGGREGATOR_REPORT_FD), and run by
 * hand prints it readably on stderr. Also what a fatal error at shutdown
 * was, and memory_limit as the process started, for its hint.
 */
final class Report
{
    /** Error types that end the process (a shutdown function still runs). */
    public const FATAL_ERRORS = E_ERROR | E_CORE_ERROR | E_COMPILE_ERROR | E_USER_ERROR | E_PARSE;

    /** @var resource|false|null the exec report pipe; false when there is none */
    private static $pipe = null;

    /** memory_limit as the process started (before a fatal error's report raises it). */
    private static ?string $memoryLimit = null;

    /** Note memory_limit while it is the configured one. */
    public static function rememberMemoryLimit(): void
    {
        self::$memoryLimit ??= (string)ini_get('memory_limit');
    }

    /**
     * A fatal error (error_get_last() at shutdown) as a Failure.
     *
     * @param array{type: int, message: string, file: string, line: int} $error
     */
    public static function fatal(array $error): Failure
    {
        return Failure::fatalError($error, self::$memoryLimit ?? (string)ini_get('memory_limit'));
    }

    /**
     * The fatal error that ends this process, if that is why it ends.
     *
     * @return array{type: int, message: string, file: string, line: int}|null
     */
    public static function fatalError(): ?array
    {
        $error = error_get_last();
        return $error !== null && ($error['type'] & self::FATAL_ERRORS) !== 0 ? $error : null;
    }

    /**
     * Exec mode: hand a failure to the aggregator through the report pipe,
     * or, run by hand, print it readably on stderr.
     */
    public static function send(Failure $failure): void
    {
        $pipe = self::pipe();
        if ($pipe !== false) {
            @fwrite($pipe, '{"exception":' . $failure->json() . "}\n");
            return;
        }
        fwrite(STDERR, $failure->text() . "\n");
    }

    /**
     * Exec mode: report uncaught exceptions and fatal errors through the
     * pipe (what the prepend file sets up, so scripts of the first
     * implementation need no change). Run by hand, PHP's own messages stay.
     */
    public static function install(): void
    {
        self::rememberMemoryLimit();
        if (self::pipe() === false) {
            return;
        }
        set_exception_handler(static function (\Throwable $e): void {
            self::send(Failure::of($e));
            exit(255); // what PHP itself does on an uncaught exception
        });
        register_shutdown_function(static function (): void {
            $error = self::fatalError();
            if ($error !== null) {
                self::allowShutdownMemory();
                self::send(self::fatal($error));
            }
        });
    }

    /** After "memory exhausted" nothing can be allocated: raise the limit a little for the report. */
    public static function allowShutdownMemory(): void
    {
        if (ini_get('memory_limit') !== '-1') {
            @ini_set('memory_limit', (string)(memory_get_usage(true) + (8 << 20)));
        }
    }

    /** @return resource|false the report pipe the aggregator passed, or false */
    private static function pipe()
    {
        if (self::$pipe !== null) {
            return self::$pipe;
        }
        self::$pipe = false;
        $fd = getenv('AGGREGATOR_REPORT_FD');
        if ($fd !== false && preg_match('/^\d+$/', $fd) === 1) {
            $stream = @fopen("php://fd/$fd", 'wb');
            if ($stream !== false && ((fstat($stream)['mode'] ?? 0) & 0170000) === 0010000) {
                self::$pipe = $stream;
            }
        }
        return self::$pipe;
    }
}

<?php

declare(strict_types=1);

namespace Aggregator;

/**
 * How PHP tells the aggregator that a handler failed, as data: a throwable
 * or a fatal error becomes one array (class, message, file, line, trace,
 * and whether the customer may see the message), which the worker sends in
 * its ERROR frame and an exec script writes to the report pipe the
 * aggregator gives it (fd AGGREGATOR_REPORT_FD). The aggregator logs it as
 * one "handler failed" line and `aggregator call` prints it; nothing parses
 * PHP's text.
 */
final class Report
{
    public const JSON_FLAGS = JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE | JSON_PARTIAL_OUTPUT_ON_ERROR;

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
     * A throwable as data; the trace lists the previous exceptions too.
     *
     * @return array{error: string, class: string, file: string, line: int, trace: string, public?: true}
     */
    public static function describe(\Throwable $e): array
    {
        $trace = $e->getTraceAsString();
        for ($cause = $e->getPrevious(); $cause !== null; $cause = $cause->getPrevious()) {
            $trace .= sprintf("\nCaused by %s: %s in %s:%d\n%s", get_class($cause), $cause->getMessage(), $cause->getFile(), $cause->getLine(), $cause->getTraceAsString());
        }
        $out = [
            'error' => $e->getMessage(),
            'class' => get_class($e),
            'file' => $e->getFile(),
            'line' => $e->getLine(),
            'trace' => $trace,
        ];
        if ($e instanceof PublicError) {
            $out['public'] = true;
        }
        return $out;
    }

    /**
     * A fatal error (error_get_last() at shutdown) as data, with a hint
     * where PHP knows what to do about it.
     *
     * @param array{type: int, message: string, file: string, line: int} $error
     * @return array{error: string, class: string, file: string, line: int, trace: string, fatal: true, hint?: string}
     */
    public static function fatal(array $error): array
    {
        $out = [
            'error' => $error['message'],
            'class' => 'FatalError',
            'file' => $error['file'],
            'line' => $error['line'],
            'trace' => '',
            'fatal' => true,
        ];
        if (str_starts_with($error['message'], 'Allowed memory size')) {
            $out['hint'] = sprintf(
                'memory_limit is %s: it comes from -d memory_limit=… in aggregator.worker.command (worker mode) '
                . 'or the script command (exec mode), else php.ini; raise it there, or make the handler hold less',
                self::$memoryLimit ?? (string)ini_get('memory_limit'),
            );
        }
        return $out;
    }

    /** The fatal error that ends this process, if that is why it ends. */
    public static function fatalError(): ?array
    {
        $error = error_get_last();
        return $error !== null && ($error['type'] & self::FATAL_ERRORS) !== 0 ? $error : null;
    }

    /**
     * Exec mode: hand a failure to the aggregator through the report pipe,
     * or, run by hand, print it readably on stderr.
     *
     * @param array<string, mixed> $failure from describe() or fatal()
     */
    public static function send(array $failure): void
    {
        $pipe = self::pipe();
        if ($pipe !== false) {
            @fwrite($pipe, json_encode(['exception' => $failure], self::JSON_FLAGS) . "\n");
            return;
        }
        $text = sprintf('%s: %s in %s:%d', $failure['class'], $failure['error'], $failure['file'], $failure['line']);
        if (($failure['trace'] ?? '') !== '') {
            $text .= "\n" . $failure['trace'];
        }
        if (isset($failure['hint'])) {
            $text .= "\nhint: " . $failure['hint'];
        }
        fwrite(STDERR, $text . "\n");
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
            self::send(self::describe($e));
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
        if ($fd !== false && ctype_digit($fd)) {
            $stream = @fopen("php://fd/$fd", 'wb');
            if ($stream !== false && ((fstat($stream)['mode'] ?? 0) & 0170000) === 0010000) {
                self::$pipe = $stream;
            }
        }
        return self::$pipe;
    }
}

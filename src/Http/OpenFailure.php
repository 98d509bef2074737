<?php

declare(strict_types=1);

namespace Aggregator\Http;

/**
 * PHP's own warnings for an http:// open that failed through StreamWrapper.
 *
 * When a user wrapper's stream_open() returns false, PHP warns
 * `file_get_contents(URL): Failed to open stream: "...::stream_open" call
 * failed` at the translator's line; PHP's http wrapper would have said why
 * (`HTTP request failed! HTTP/1.1 404 Not Found`, `Connection refused`, a
 * getaddrinfo warning before it). arm() puts a one-shot error handler in
 * front of that warning which raises PHP's texts instead, at the same file
 * and line, as E_WARNING: the translator's own error handler (an
 * ErrorException converter, say) gets exactly what PHP's wrapper would give
 * it. With no handler of its own, the warnings are displayed and logged as
 * PHP does (display_errors, log_errors, error_reporting, the @ operator),
 * and error_get_last() holds PHP's message (as E_USER_WARNING raised in this
 * file: PHP lets no code raise E_WARNING at another line).
 *
 * @internal
 */
final class OpenFailure
{
    /** How PHP ends the warning for a user wrapper's failed stream_open(). */
    private const CALL_FAILED = '::stream_open" call failed';

    private const OPEN_FAILED = 'Failed to open stream: ';

    /** @var array{0: ?string, 1: list<string>}|null the detail and the warnings before it, while armed */
    private static ?array $pending = null;

    /** @var callable|null the handler that was there before arm() */
    private static $previous = null;

    private static ?\Closure $handler = null;

    /**
     * Replace the warning PHP raises next for a failed open with PHP's own.
     *
     * @param ?string      $detail what follows "Failed to open stream: "; null: no warning at all (an exception says it)
     * @param list<string> $before warnings PHP raises before it, as "function(): text"
     */
    public static function arm(?string $detail, array $before = []): void
    {
        self::disarm();
        self::$handler ??= self::handle(...);
        self::$pending = [$detail, $before];
        self::$previous = set_error_handler(self::$handler);
    }

    /**
     * Take the handler away if its warning never came (the open was made
     * without REPORT_ERRORS). Called before every open.
     */
    public static function disarm(): void
    {
        if (self::$pending === null) {
            return;
        }
        self::$pending = null;
        $current = set_error_handler(null);
        restore_error_handler();
        if ($current === self::$handler) {
            restore_error_handler();
        }
        self::$previous = null;
    }

    /** The one-shot handler: PHP's texts for the failed open, anything else as if it were not there. */
    private static function handle(int $type, string $message, string $file = '', int $line = 0): bool
    {
        if (self::$pending === null) {
            return false; // put back by code that saved and restored handlers: PHP's own handling
        }
        [$detail, $before] = self::$pending;
        $previous = self::$previous;
        self::$pending = self::$previous = null;
        restore_error_handler();
        if ($type !== E_WARNING || !str_ends_with($message, self::CALL_FAILED)) {
            return $previous !== null && $previous($type, $message, $file, $line) !== false;
        }
        if ($detail === null) {
            return true;
        }
        $function = substr($message, 0, (int)strpos($message, '('));
        $at = strrpos($message, self::OPEN_FAILED);
        foreach ($before as $text) {
            self::raise($previous, "$function(): $text", $file, $line);
        }
        self::raise($previous, substr($message, 0, (int)$at) . self::OPEN_FAILED . $detail, $file, $line);
        return true;
    }

    /** One warning: to the translator's handler, else PHP's display, log and error_get_last(). */
    private static function raise(?callable $previous, string $message, string $file, int $line): void
    {
        if ($previous !== null && $previous(E_WARNING, $message, $file, $line) !== false) {
            return;
        }
        if ((error_reporting() & E_WARNING) !== 0) {
            self::report($message, $file, $line);
        }
        // error_get_last(): PHP's message. Raised with display and log off,
        // past any handler, since report() already showed it where PHP would.
        $display = ini_set('display_errors', '0');
        $log = ini_set('log_errors', '0');
        set_error_handler(static fn (): bool => false);
        try {
            trigger_error($message, E_USER_WARNING);
        } finally {
            restore_error_handler();
            ini_set('display_errors', (string)$display);
            ini_set('log_errors', (string)$log);
        }
    }

    /** Display and log a warning as PHP's CLI does. */
    private static function report(string $message, string $file, int $line): void
    {
        $text = "Warning: $message in $file on line $line";
        if (filter_var(ini_get('log_errors'), FILTER_VALIDATE_BOOL)) {
            error_log("PHP Warning:  $message in $file on line $line"); // two spaces, as PHP logs
        }
        $display = strtolower((string)ini_get('display_errors'));
        if ($display === 'stderr') {
            fwrite(STDERR, "$text\n");
        } elseif ($display === 'stdout' || filter_var($display, FILTER_VALIDATE_BOOL)) {
            echo ini_get('error_prepend_string'), "\n$text\n", ini_get('error_append_string');
        }
    }
}

<?php

declare(strict_types=1);

namespace Aggregator\Tests;

/** Thrown by a failed assertion. */
final class AssertionFailed extends \RuntimeException
{
}

/**
 * Minimal assertions for tests/run.php: each throws AssertionFailed on failure.
 */
final class Assert
{
    public static function same(mixed $expected, mixed $actual, string $message = ''): void
    {
        if ($expected !== $actual) {
            self::fail(sprintf('%sexpected %s, got %s', self::prefix($message), self::show($expected), self::show($actual)));
        }
    }

    public static function true(bool $condition, string $message = 'expected true'): void
    {
        if (!$condition) {
            self::fail($message);
        }
    }

    public static function contains(string $needle, string $haystack, string $message = ''): void
    {
        if (!str_contains($haystack, $needle)) {
            self::fail(sprintf('%sexpected %s to contain %s', self::prefix($message), self::show($haystack), self::show($needle)));
        }
    }

    /**
     * Run $code and check it throws $class; returns the exception for more checks.
     *
     * @param class-string<\Throwable> $class
     */
    public static function throws(string $class, callable $code, string $message = ''): \Throwable
    {
        try {
            $code();
        } catch (\Throwable $e) {
            if ($e instanceof $class) {
                return $e;
            }
            self::fail(sprintf('%sexpected %s, got %s: %s', self::prefix($message), $class, get_class($e), $e->getMessage()));
        }
        self::fail(sprintf('%sexpected %s, nothing was thrown', self::prefix($message), $class));
    }

    public static function fail(string $message): never
    {
        throw new AssertionFailed($message);
    }

    private static function prefix(string $message): string
    {
        return $message === '' ? '' : "$message: ";
    }

    private static function show(mixed $value): string
    {
        $text = is_string($value) ? '"' . $value . '"' : (string)json_encode($value, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE);
        return strlen($text) > 300 ? substr($text, 0, 300) . '... (' . strlen($text) . ' chars)' : $text;
    }
}

<?php

declare(strict_types=1);

namespace Aggregator\Tests;

/**
 * assertThrows() for a TestCase: like expectException(), but for a throw in
 * the middle of a test (or several in a loop), and it returns the exception
 * for more checks.
 */
trait AssertThrows
{
    /**
     * Run $code and check it throws $class; returns the exception.
     *
     * @template T of \Throwable
     * @param class-string<T> $class
     * @return T
     */
    protected static function assertThrows(string $class, callable $code, string $message = ''): \Throwable
    {
        $prefix = $message === '' ? '' : "$message: ";
        try {
            $code();
        } catch (\Throwable $e) {
            if (!$e instanceof $class) {
                self::fail(sprintf('%sexpected %s, got %s: %s', $prefix, $class, get_class($e), $e->getMessage()));
            }
            self::assertInstanceOf($class, $e, $message);
            return $e;
        }
        self::fail(sprintf('%sexpected %s, nothing was thrown', $prefix, $class));
    }
}

<?php

declare(strict_types=1);

namespace Aggregator\Http;

/**
 * The header lines of the last http(s) stream a job opened through
 * StreamWrapper: what PHP's own wrapper would have put in
 * $http_response_header, which PHP sets for no user wrapper. Kept per
 * Fiber, since jobs of one worker interleave, and dropped when the job ends
 * (the worker calls forget()), so a job never sees another's headers.
 *
 * @internal
 */
final class LastResponse
{
    /** @var \WeakMap<\Fiber, list<string>|null>|null */
    private static ?\WeakMap $byFiber = null;

    /** @var list<string>|null outside any Fiber */
    private static ?array $outside = null;

    /** @param list<string>|null $lines null: the open got no answer */
    public static function remember(?array $lines): void
    {
        $fiber = \Fiber::getCurrent();
        if ($fiber === null) {
            self::$outside = $lines;
            return;
        }
        self::$byFiber ??= new \WeakMap();
        self::$byFiber[$fiber] = $lines;
    }

    /** @return list<string>|null */
    public static function get(): ?array
    {
        $fiber = \Fiber::getCurrent();
        return $fiber === null ? self::$outside : (self::$byFiber[$fiber] ?? null);
    }

    /** A job ended on $fiber: its headers go with it. */
    public static function forget(\Fiber $fiber): void
    {
        if (self::$byFiber !== null) {
            unset(self::$byFiber[$fiber]);
        }
    }
}

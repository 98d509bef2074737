<?php

declare(strict_types=1);

namespace Aggregator\Http;

use Aggregator\Response;

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
    /** @var \WeakMap<\Fiber, Response|list<string>|null>|null */
    private static ?\WeakMap $byFiber = null;

    /** @var Response|list<string>|null outside any Fiber */
    private static Response|array|null $outside = null;

    /**
     * @param Response|list<string>|null $lines the answer (its lines are made
     *        when asked for), PHP's wrapper's lines, or null: no answer
     */
    public static function remember(Response|array|null $lines): void
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
        $last = $fiber === null ? self::$outside : (self::$byFiber[$fiber] ?? null);
        return $last instanceof Response ? ResponseHead::lines($last) : $last;
    }

    /** A job ended on $fiber: its headers go with it. */
    public static function forget(\Fiber $fiber): void
    {
        if (self::$byFiber !== null) {
            unset(self::$byFiber[$fiber]);
        }
    }
}

<?php

declare(strict_types=1);

namespace Aggregator\Http;

/**
 * What this kit's fetch() takes of the options of SPEC §14 that the
 * adapters need beyond method, headers, body and timeout (today:
 * `redirects`, and its form that keeps the headers on a redirect to another
 * host). Request::from() is asked once per process; an adapter that cannot
 * have what it needs hands the call to PHP's own HTTP code instead.
 *
 * @internal
 */
final class FetchOptions
{
    /** The methods fetch() sends (SPEC §14). */
    public const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

    private static ?bool $redirects = null;
    private static ?bool $keepHeaders = null;

    /** Whether fetch() takes the `redirects` option. */
    public static function hasRedirects(): bool
    {
        return self::$redirects ??= self::accepts(['redirects' => 0]);
    }

    /**
     * The `redirects` option for following at most $max redirects as PHP's
     * own HTTP code does: its headers are sent again after a redirect, to
     * another host too (fetch() by itself drops them there, SPEC §14).
     *
     * @return int|array{max: int, cross_host_headers: true}
     */
    public static function redirectsAsPhp(int $max): int|array
    {
        self::$keepHeaders ??= self::accepts(['redirects' => ['max' => 0, 'cross_host_headers' => true]]);
        return self::$keepHeaders ? ['max' => $max, 'cross_host_headers' => true] : $max;
    }

    /** @param array<string, mixed> $options */
    private static function accepts(array $options): bool
    {
        try {
            Request::from('http://127.0.0.1/', $options);
            return true;
        } catch (\InvalidArgumentException) {
            return false;
        }
    }
}

<?php

declare(strict_types=1);

namespace Aggregator\Http;

/**
 * Whether this kit's fetch() takes an option of SPEC §14 that the adapters
 * need beyond method, headers, body and timeout (today: `redirects`). The
 * answer is asked of Request::from() once per process; an adapter that
 * cannot have it hands the call to PHP's own HTTP code instead.
 *
 * @internal
 */
final class FetchOptions
{
    /** The methods fetch() sends (SPEC §14). */
    public const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

    /** A value of each option that Request::from() accepts once it knows the option. */
    private const SAMPLES = ['redirects' => 0];

    /** @var array<string, bool> */
    private static array $known = [];

    public static function has(string $option): bool
    {
        return self::$known[$option] ??= self::accepted($option);
    }

    private static function accepted(string $option): bool
    {
        try {
            Request::from('http://127.0.0.1/', [$option => self::SAMPLES[$option] ?? null]);
            return true;
        } catch (\InvalidArgumentException) {
            return false;
        }
    }
}

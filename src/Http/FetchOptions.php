<?php

declare(strict_types=1);

namespace Aggregator\Http;

/**
 * What the adapters (the stream wrapper, SoapClient, Guzzle, PSR-18) give
 * fetch() so that a call behaves as PHP's own HTTP code would.
 *
 * @internal
 */
final class FetchOptions
{
    /** The methods fetch() sends (SPEC §14). */
    public const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

    /**
     * The fetch() options for following at most $max redirects as PHP's
     * own HTTP code does: its headers are sent again after a redirect, to
     * another host too (fetch() by itself drops them there, SPEC §14).
     *
     * @return array{redirects: int, redirect_headers: true}
     */
    public static function redirectsAsPhp(int $max): array
    {
        return ['redirects' => $max, 'redirect_headers' => true];
    }
}

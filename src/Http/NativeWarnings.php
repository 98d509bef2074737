<?php

declare(strict_types=1);

namespace Aggregator\Http;

use Aggregator\FetchException;

/**
 * The warnings PHP's http:// wrapper raises when an open gets no answer,
 * for the same failure seen by the aggregator: the text after "Failed to
 * open stream: " and the warnings PHP raises before it (OpenFailure).
 *
 * @internal
 */
final class NativeWarnings
{
    private const OPEN_FAILED = 'Failed to open stream: ';

    /**
     * @return array{0: string, 1: list<string>} the detail, and the warnings before it
     */
    public static function forFailure(string $url, FetchException $e): array
    {
        $host = (string)parse_url($url, PHP_URL_HOST);
        switch ($e->cause) {
            case 'refused':
                return ['Connection refused', []];
            case 'dns':
                $lookup = "php_network_getaddresses: getaddrinfo for $host failed: Name or service not known";
                return [$lookup, [$lookup]];
            case 'timeout':
            case 'network':
                return ['HTTP request failed!', []];
            case 'redirects':
                return ['Redirection limit reached, aborting', []];
            case 'tls':
                return ['operation failed', [...self::tls($e->getMessage(), $host), 'Failed to enable crypto']];
        }
        // A cause PHP's wrapper does not have (too_large, a supplier limit): the aggregator's words.
        return [$e->getMessage(), []];
    }

    /**
     * The warnings of a failed fopen() by PHP's own wrapper, split the same way.
     *
     * @param list<string> $warnings what PHP raised, e.g. "fopen(): php_network_getaddresses: ..."
     * @return array{0: string, 1: list<string>}
     */
    public static function fromNative(array $warnings): array
    {
        $detail = 'operation failed';
        $before = [];
        foreach ($warnings as $warning) {
            $at = strpos($warning, self::OPEN_FAILED);
            if ($at !== false) {
                $detail = substr($warning, $at + strlen(self::OPEN_FAILED));
            } else {
                $before[] = str_contains($warning, '(): ') ? substr($warning, strpos($warning, '(): ') + 4) : $warning;
            }
        }
        return [$detail, $before];
    }

    /**
     * What OpenSSL makes PHP say before "Failed to enable crypto", told
     * from Go's words for the same certificate problem.
     *
     * @return list<string>
     */
    private static function tls(string $message, string $host): array
    {
        if (preg_match('/certificate is valid for ([^,\s]+)/', $message, $m) === 1) {
            return ["Peer certificate CN=`$m[1]' did not match expected CN=`$host'"];
        }
        if (str_contains($message, 'x509') || str_contains($message, 'certificate')) {
            return ["SSL operation failed with code 1. OpenSSL Error messages:\nerror:0A000086:SSL routines::certificate verify failed"];
        }
        return [];
    }
}

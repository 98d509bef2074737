<?php

/**
 * What PHP's http:// wrapper gives that a user wrapper cannot (SPEC §17,
 * docs/porting.md). Loaded like src/functions.php: by the worker, the exec
 * prepend file and composer's autoload ("files").
 */

declare(strict_types=1);

namespace Aggregator;

use Aggregator\Http\LastResponse;
use Aggregator\Http\StreamWrapper;

if (!function_exists('Aggregator\last_response_headers')) {
    /**
     * The header lines of the last http(s) stream this job opened through
     * the aggregator (its $http_response_header, which PHP does not set for
     * the aggregator's wrapper). Written to work in both modes:
     *
     *     $body = file_get_contents($url, false, $context);
     *     $headers = $http_response_header ?? \Aggregator\last_response_headers();
     *
     * @return list<string>|null "HTTP/1.1 200 OK", "Content-Type: ...", ...; null when the last open got no answer or there was none
     */
    function last_response_headers(): ?array
    {
        return LastResponse::get();
    }

    /**
     * PHP's get_headers(), through the aggregator in a worker's job: PHP's
     * own get_headers() returns false for any user wrapper, so a job calls
     * this one instead. Elsewhere it is PHP's get_headers().
     *
     * @param resource|null $context
     * @return array<int|string, string|list<string>>|false
     */
    function get_headers(string $url, bool $associative = false, $context = null): array|false
    {
        if (!StreamWrapper::installed() || !Fetch::inJob()) {
            return \get_headers($url, $associative, $context);
        }
        $stream = fopen($url, 'rb', false, $context ?? stream_context_get_default());
        if ($stream === false) {
            return false;
        }
        $lines = iterator_to_array(stream_get_meta_data($stream)['wrapper_data']);
        fclose($stream);
        if (!$associative) {
            return $lines;
        }
        $headers = [];
        foreach ($lines as $line) {
            [$name, $value] = str_contains($line, ':') ? array_map('trim', explode(':', $line, 2)) : [null, $line];
            match (true) {
                $name === null => $headers[] = $value,
                !isset($headers[$name]) => $headers[$name] = $value,
                default => $headers[$name] = [...(array)$headers[$name], $value],
            };
        }
        return $headers;
    }
}

<?php

declare(strict_types=1);

namespace Aggregator\Http;

use Aggregator\Response;

/**
 * The head of a Response as PHP's own HTTP code shows it: a status line
 * and "Name: value" lines (the http:// wrapper's wrapper_data, SoapClient's
 * last response headers, a PSR-7 response's header lists).
 *
 * The aggregator hands a response over with lower-case names and repeated
 * headers joined with ", " (SPEC §14), so the head is rebuilt: the status
 * line says HTTP/1.1 and the standard reason phrase, names are in their
 * usual case (Content-Type), and a joined Set-Cookie is split again.
 *
 * @internal
 */
final class ResponseHead
{
    /** Reason phrases of RFC 9110 (and 429 of RFC 6585), as servers send them. */
    private const REASONS = [
        100 => 'Continue', 101 => 'Switching Protocols', 103 => 'Early Hints',
        200 => 'OK', 201 => 'Created', 202 => 'Accepted', 203 => 'Non-Authoritative Information',
        204 => 'No Content', 205 => 'Reset Content', 206 => 'Partial Content',
        300 => 'Multiple Choices', 301 => 'Moved Permanently', 302 => 'Found', 303 => 'See Other',
        304 => 'Not Modified', 305 => 'Use Proxy', 307 => 'Temporary Redirect', 308 => 'Permanent Redirect',
        400 => 'Bad Request', 401 => 'Unauthorized', 402 => 'Payment Required', 403 => 'Forbidden',
        404 => 'Not Found', 405 => 'Method Not Allowed', 406 => 'Not Acceptable',
        407 => 'Proxy Authentication Required', 408 => 'Request Timeout', 409 => 'Conflict', 410 => 'Gone',
        411 => 'Length Required', 412 => 'Precondition Failed', 413 => 'Content Too Large',
        414 => 'URI Too Long', 415 => 'Unsupported Media Type', 416 => 'Range Not Satisfiable',
        417 => 'Expectation Failed', 421 => 'Misdirected Request', 422 => 'Unprocessable Content',
        425 => 'Too Early', 426 => 'Upgrade Required', 428 => 'Precondition Required',
        429 => 'Too Many Requests', 431 => 'Request Header Fields Too Large',
        451 => 'Unavailable For Legal Reasons',
        500 => 'Internal Server Error', 501 => 'Not Implemented', 502 => 'Bad Gateway',
        503 => 'Service Unavailable', 504 => 'Gateway Timeout', 505 => 'HTTP Version Not Supported',
    ];

    /** The reason phrase of a status ("Not Found"), "" for one without a standard phrase. */
    public static function reason(int $status): string
    {
        return self::REASONS[$status] ?? '';
    }

    /** "HTTP/1.1 404 Not Found". */
    public static function statusLine(int $status): string
    {
        return rtrim("HTTP/1.1 $status " . self::reason($status));
    }

    /**
     * name => values, each value one header line's.
     *
     * @return array<string, list<string>>
     */
    public static function fields(Response $response): array
    {
        $fields = [];
        foreach ($response->headers as $name => $value) {
            $name = self::name((string)$name);
            $fields[$name] = $name === 'Set-Cookie' ? self::splitCookies((string)$value) : [(string)$value];
        }
        return $fields;
    }

    /**
     * The status line, then one "Name: value" line per value: what PHP's
     * wrapper puts in $http_response_header and wrapper_data.
     *
     * @return list<string>
     */
    public static function lines(Response $response): array
    {
        $lines = [self::statusLine($response->status)];
        foreach (self::fields($response) as $name => $values) {
            foreach ($values as $value) {
                $lines[] = "$name: $value";
            }
        }
        return $lines;
    }

    /** A header name in its usual case: content-type -> Content-Type. */
    public static function name(string $lower): string
    {
        return implode('-', array_map('ucfirst', explode('-', strtolower($lower))));
    }

    /**
     * Set-Cookie values joined with ", " split again. A comma inside a
     * cookie (Expires=Wed, 21 Oct 2026 ...) is not followed by "name=".
     *
     * @return list<string>
     */
    public static function splitCookies(string $joined): array
    {
        $parts = preg_split('/,\s*(?=[^;,=\s]+=)/', $joined);
        return $parts === false ? [$joined] : $parts;
    }
}

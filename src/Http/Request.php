<?php

declare(strict_types=1);

namespace Aggregator\Http;

use Aggregator\FetchException;

/**
 * One call of \Aggregator\fetch(), checked: an http(s) URL, an upper-case
 * method, headers without line breaks, a body, and a timeout in seconds
 * (null: what is left of the job's time).
 *
 * @internal
 */
final class Request
{
    /**
     * @param list<array{0: string, 1: string}> $headers name, value
     */
    private function __construct(
        public readonly string $method,
        public readonly string $url,
        public readonly array $headers,
        public readonly string $body,
        public readonly ?float $timeout,
    ) {
    }

    /**
     * Build a request from fetch()'s arguments.
     *
     * @param array{method?: string, headers?: array<string, scalar>, body?: ?string, timeout?: int|float|null} $options
     * @throws FetchException            for a scheme other than http/https (the call cannot be made)
     * @throws \InvalidArgumentException for options that are a programming error
     */
    public static function from(string $url, array $options): self
    {
        $unknown = array_diff(array_keys($options), ['method', 'headers', 'body', 'timeout']);
        if ($unknown !== []) {
            throw new \InvalidArgumentException('fetch(): unknown option(s) ' . implode(', ', $unknown) . '; known: method, headers, body, timeout');
        }
        $method = strtoupper((string)($options['method'] ?? 'GET'));
        if (preg_match('/^[A-Z]+$/', $method) !== 1) {
            throw new \InvalidArgumentException("fetch(): bad method '$method'");
        }
        $headers = [];
        foreach ($options['headers'] ?? [] as $name => $value) {
            if (!is_string($name) || preg_match('/^[A-Za-z0-9!#$%&\'*+.^_`|~-]+$/', $name) !== 1) {
                throw new \InvalidArgumentException('fetch(): header names must be tokens like X-Api-Key, got ' . var_export($name, true));
            }
            if (!is_scalar($value) || preg_match('/[\r\n\0]/', (string)$value) === 1) {
                throw new \InvalidArgumentException("fetch(): header '$name' must be a string without line breaks");
            }
            $headers[] = [$name, (string)$value];
        }
        $body = $options['body'] ?? null;
        if ($body !== null && !is_string($body)) {
            throw new \InvalidArgumentException('fetch(): body must be a string or null, got ' . get_debug_type($body));
        }
        $timeout = $options['timeout'] ?? null;
        if ($timeout !== null && (!is_int($timeout) && !is_float($timeout) || $timeout <= 0)) {
            throw new \InvalidArgumentException('fetch(): timeout must be a number of seconds above 0, or null');
        }
        $scheme = strtolower((string)parse_url($url, PHP_URL_SCHEME));
        $host = (string)parse_url($url, PHP_URL_HOST);
        if (($scheme !== 'http' && $scheme !== 'https') || $host === '') {
            throw new FetchException($url, 'scheme', "$method $url: scheme: only http:// and https:// URLs can be fetched");
        }
        return new self($method, $url, $headers, $body ?? '', $timeout === null ? null : (float)$timeout);
    }

    /** The request as the worker sends it to the aggregator (the body travels apart). */
    public function head(): string
    {
        return (string)json_encode([
            'method' => $this->method,
            'url' => $this->url,
            'headers' => $this->headers,
            'timeout' => $this->timeout,
        ], JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_INVALID_UTF8_SUBSTITUTE);
    }
}

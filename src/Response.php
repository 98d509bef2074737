<?php

declare(strict_types=1);

namespace Aggregator;

/**
 * A supplier's answer to \Aggregator\fetch(): any status, 4xx and 5xx
 * included (only "no answer" throws, as FetchException).
 */
final readonly class Response
{
    /**
     * @param int                   $status  e.g. 200 or 503
     * @param array<string, string> $headers lower-case name => value; repeated headers joined with ", "
     * @param string                $body    the raw body
     * @param string                $url     the URL that answered (after redirects)
     */
    public function __construct(
        public int $status,
        public array $headers,
        public string $body,
        public string $url = '',
    ) {
    }

    /**
     * The body decoded as JSON.
     *
     * @return mixed[]
     * @throws \JsonException when the body is not JSON, or JSON but not an object or array
     */
    public function json(): array
    {
        $value = json_decode($this->body, true, 512, JSON_THROW_ON_ERROR);
        if (!is_array($value)) {
            throw new \JsonException(sprintf('the body of %s is JSON but not an object or array: %s', $this->url ?: 'the response', get_debug_type($value)));
        }
        return $value;
    }

    /** Whether the status is 2xx. */
    public function ok(): bool
    {
        return $this->status >= 200 && $this->status < 300;
    }

    /** A header by name (any case), or null. */
    public function header(string $name): ?string
    {
        return $this->headers[strtolower($name)] ?? null;
    }
}

<?php

declare(strict_types=1);

namespace Aggregator\Http;

use Aggregator\FetchException;

/**
 * One call of \Aggregator\fetch(), checked and encoded (Options.php,
 * Url.php): an http(s) URL as it is sent, a method fetch() makes, headers
 * that can travel, the body, a timeout in seconds (null: what is left of
 * the job's time) and how redirects are followed. Everything the options
 * add (query, json, form, auth) is in the URL, the body and the headers
 * by now, so worker mode and exec mode send the same request. A Request
 * always has a head (docs/PROTOCOL.md): what cannot be encoded was refused
 * while it was made, in the translator's job.
 *
 * @internal
 */
final readonly class Request
{
    /** Redirects followed when the call does not say: PHP's own default. */
    public const DEFAULT_REDIRECTS = 20;

    /** json_encode flags of the head: it holds nothing that could fail (see from()). */
    private const HEAD_FLAGS = JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR;

    /**
     * @param list<array{0: string, 1: string}> $headers name, value
     * @param ?int      $redirects       the most redirects to follow; null: DEFAULT_REDIRECTS
     * @param bool      $redirectHeaders whether a redirect to another origin keeps the headers
     * @param list<int> $notFailures     statuses that are no failure for the supplier's breaker (worker mode)
     */
    private function __construct(
        public string $method,
        public string $url,
        public array $headers,
        public string $body,
        public ?float $timeout,
        public ?int $redirects,
        public bool $redirectHeaders,
        public array $notFailures,
        private string $head,
    ) {
    }

    /**
     * Build a request from fetch()'s arguments.
     *
     * @param array<array-key, mixed> $options fetch()'s options (SPEC §14, docs/translators.md)
     * @throws FetchException            for a scheme other than http/https, or no host (the call cannot be made)
     * @throws \InvalidArgumentException for options that are a programming error, or cannot be sent
     */
    public static function from(string $url, array $options): self
    {
        Options::check($options);
        $method = Options::method($options['method'] ?? 'GET');
        $headers = Options::headers($options['headers'] ?? []);
        [$body, $contentType] = Options::body($options);
        if ($contentType !== null && !Options::has($headers, 'Content-Type')) {
            $headers[] = ['Content-Type', $contentType];
        }
        if (isset($options['auth'])) {
            if (Options::has($headers, 'Authorization')) {
                throw new \InvalidArgumentException('fetch(): auth and an Authorization header are both credentials: give one');
            }
            $headers[] = Options::auth($options['auth']);
        }
        $timeout = Options::timeout($options['timeout'] ?? null);
        $redirects = Options::redirects($options['redirects'] ?? null);
        $redirectHeaders = Options::redirectHeaders($options['redirect_headers'] ?? null);
        $notFailures = Options::notFailures($options['not_failures'] ?? null);
        $target = self::target($url, $method, $options['query'] ?? null);
        $head = ['method' => $method, 'url' => $target, 'headers' => $headers, 'timeout' => $timeout];
        if ($redirects !== null) {
            $head['redirects'] = $redirects;
        }
        if ($redirectHeaders) {
            $head['redirect_headers'] = true;
        }
        if ($notFailures !== []) {
            $head['not_failures'] = $notFailures;
        }
        $json = json_encode($head, self::HEAD_FLAGS); // every part was checked: this cannot throw, and if it did it would be in the job
        return new self($method, $target, $headers, $body, $timeout, $redirects, $redirectHeaders, $notFailures, $json);
    }

    /**
     * The request as the worker sends it to the aggregator (the body travels
     * apart): {"method","url","headers","timeout"}, plus "redirects",
     * "redirect_headers" and "not_failures" when the call sets them
     * (docs/PROTOCOL.md).
     */
    public function head(): string
    {
        return $this->head;
    }

    /** The most redirects to follow. */
    public function maxRedirects(): int
    {
        return $this->redirects ?? self::DEFAULT_REDIRECTS;
    }

    /**
     * The URL to call: checked, encoded, with the query option appended.
     *
     * @throws FetchException            for a scheme other than http/https, or no host
     * @throws \InvalidArgumentException for a URL that cannot be sent, or a query that is not an array
     */
    private static function target(string $url, string $method, mixed $query): string
    {
        $parsed = Url::parse($url);
        if (($parsed->scheme !== 'http' && $parsed->scheme !== 'https') || $parsed->host === '') {
            throw new FetchException($url, 'scheme', "$method $url: scheme: only http:// and https:// URLs can be fetched");
        }
        if ($query !== null) {
            if (!is_array($query)) {
                throw new \InvalidArgumentException('fetch(): query must be an array of name => value, got ' . get_debug_type($query));
            }
            $parsed = $parsed->withQuery($query);
        }
        return (string)$parsed;
    }
}

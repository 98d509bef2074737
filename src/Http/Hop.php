<?php

declare(strict_types=1);

namespace Aggregator\Http;

use Aggregator\FetchException;

/**
 * One request of a call's redirect chain, in exec mode (StreamTransport
 * follows redirects itself, so that it follows them as the aggregator does
 * in worker mode, docs/PROTOCOL.md):
 * - 301, 302, 303 with a Location: the next hop is a GET (HEAD stays HEAD)
 *   without the body and its Content-* headers; 307, 308: the same method
 *   and body; any other status is the answer;
 * - once the chain leaves the call's origin (scheme, host, port), it
 *   carries none of the translator's headers, unless the call opts in
 *   ('redirect_headers' => true);
 * - a redirect to a link-local or metadata address (169.254.0.0/16,
 *   fe80::/10, link-local multicast, fd00:ec2::254), a literal or a name
 *   that resolves to one, is refused, cause blocked_address: a supplier
 *   cannot send the call to the host's cloud credentials (fetch/redirect.go
 *   is worker mode's; aggregator.fetch.redirect-link-local, which allows
 *   them there, does not reach exec scripts);
 * - a redirect to another scheme than http/https: cause scheme.
 *
 * @internal
 */
final readonly class Hop
{
    /** Headers about a body: dropped with it (as Go's net/http drops them). */
    private const BODY_HEADERS = ['content-type', 'content-encoding', 'content-language', 'content-location'];

    /**
     * @param list<array{0: string, 1: string}> $headers
     * @param bool $crossed  whether the chain has left the call's origin
     * @param bool $withBody whether the chain still carries the body (a 301, 302 or 303 drops it for good)
     */
    private function __construct(
        public string $method,
        public Url $url,
        public array $headers,
        public string $body,
        public bool $crossed,
        public bool $withBody,
    ) {
    }

    /** The call itself, the first hop. */
    public static function first(Request $request): self
    {
        return new self($request->method, Url::parse($request->url), $request->headers, $request->body, false, true);
    }

    /**
     * The hop an answer redirects to, or null when it is the answer.
     *
     * @param int $followed how many redirects were followed before this answer
     * @throws FetchException cause redirects (more than the call allows, a Location that cannot be
     *         followed), blocked_address or scheme (where it leads)
     */
    public function next(Request $request, int $status, ?string $location, int $followed): ?self
    {
        if (!in_array($status, [301, 302, 303, 307, 308], true) || $location === null || $location === '' || $request->maxRedirects() === 0) {
            return null;
        }
        if ($followed >= $request->maxRedirects()) {
            throw self::refused($request, 'redirects', sprintf('more than %d redirects', $request->maxRedirects()));
        }
        try {
            $url = $this->url->resolve($location);
        } catch (\InvalidArgumentException $e) {
            throw self::refused($request, 'redirects', 'the redirect to ' . json_encode($location, JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE) . ' cannot be followed: ' . preg_replace('/^fetch\(\): /', '', $e->getMessage()));
        }
        if (($url->scheme !== 'http' && $url->scheme !== 'https') || $url->host === '') {
            throw self::refused($request, 'scheme', "the redirect to $url cannot be followed: only http:// and https:// URLs can be fetched");
        }
        $address = self::blockedAddress($url);
        if ($address !== null) {
            // Worded as fetch/redirect.go words it.
            throw self::refused($request, 'blocked_address', "a redirect to $address, a link-local or metadata address, is refused");
        }
        $sameMethod = $status === 307 || $status === 308 || $this->method === 'GET' || $this->method === 'HEAD';
        $withBody = $this->withBody && ($status === 307 || $status === 308);
        $crossed = $this->crossed || $url->origin() !== Url::parse($request->url)->origin();
        $headers = $crossed && !$request->redirectHeaders ? [] : $request->headers;
        if (!$withBody) {
            $headers = array_values(array_filter($headers, static fn (array $h): bool => !in_array(strtolower($h[0]), self::BODY_HEADERS, true)));
        }
        return new self($sameMethod ? $this->method : 'GET', $url, $headers, $withBody ? $request->body : '', $crossed, $withBody);
    }

    private static function refused(Request $request, string $cause, string $detail): FetchException
    {
        return new FetchException($request->url, $cause, "$request->method $request->url: $cause: $detail");
    }

    /**
     * Where a redirect may not go: the URL's host:port when its host is such
     * an address, else the first address its name resolves to (IPv4, the
     * system's resolver) that is, as ip:port; null when none is.
     */
    private static function blockedAddress(Url $url): ?string
    {
        $host = trim($url->host, '[]');
        $port = $url->port ?? ($url->scheme === 'https' ? 443 : 80);
        if (filter_var($host, FILTER_VALIDATE_IP) !== false) {
            return self::blocked($host) ? $url->host . ($url->port !== null ? ":$url->port" : '') : null;
        }
        foreach (gethostbynamel($host) ?: [] as $address) {
            if (self::blocked($address)) {
                return "$address:$port";
            }
        }
        return null;
    }

    /** Link-local unicast and multicast, and AWS's IPv6 metadata address (fetch/redirect.go's blocked()). */
    private static function blocked(string $address): bool
    {
        $bytes = (string)@inet_pton($address);
        if (strlen($bytes) === 16 && str_starts_with($bytes, str_repeat("\0", 10) . "\xFF\xFF")) {
            $bytes = substr($bytes, 12); // an IPv4-mapped address
        }
        return match (strlen($bytes)) {
            // 169.254.0.0/16; 224.0.0.0/24
            4 => ($bytes[0] === "\xA9" && $bytes[1] === "\xFE") || ($bytes[0] === "\xE0" && $bytes[1] === "\0" && $bytes[2] === "\0"),
            // fe80::/10; ff02::/16; fd00:ec2::254
            16 => ($bytes[0] === "\xFE" && (ord($bytes[1]) & 0xC0) === 0x80) || str_starts_with($bytes, "\xFF\x02") || $bytes === inet_pton('fd00:ec2::254'),
            default => false,
        };
    }
}

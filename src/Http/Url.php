<?php

declare(strict_types=1);

namespace Aggregator\Http;

/**
 * A URL as fetch() sends it (RFC 3986): a URL that cannot be sent
 * (a control character, a host that is none, a bad port) is refused, and
 * what must be percent-encoded is (a space, a quote, `<>\^`{|}`, bytes
 * above 0x7F, a `%` that starts no escape), everything else is left as
 * the translator wrote it, so a signed query stays as it was signed. `[`
 * and `]` stay too: PHP's own arrays use them in queries and every server
 * takes them. Both modes send the same bytes: the worker sends this URL to
 * Go, exec mode opens it with PHP's wrapper.
 *
 * @internal
 */
final readonly class Url
{
    /** What is encoded in a path, query or fragment: any byte but RFC 3986's pchar, "/", "?", "[", "]" and a "%" that starts an escape. */
    private const ENCODE_IN_PATH = '/%(?![0-9A-Fa-f]{2})|[^A-Za-z0-9\-._~!$&\'()*+,;=:@\/?\[\]%]/';

    /** The same for the userinfo (user:password@), where "/", "?", "@", "[" and "]" are encoded too. */
    private const ENCODE_IN_USERINFO = '/%(?![0-9A-Fa-f]{2})|[^A-Za-z0-9\-._~!$&\'()*+,;=:%]/';

    /** RFC 3986 appendix B: scheme, authority, path, query, fragment. */
    private const PARTS = '#^(?:([A-Za-z][A-Za-z0-9+.\-]*):)?(?://([^/?\#]*))?([^?\#]*)(?:\?([^\#]*))?(?:\#(.*))?$#s';

    private const DEFAULT_PORTS = ['http' => 80, 'https' => 443];

    /**
     * @param string  $scheme lower case; '' when the URL has none
     * @param ?string $authority userinfo@host:port as written (userinfo encoded); null when there is none
     * @param string  $host   lower case, IDN as punycode; '' when there is none
     * @param ?int    $port   null: the scheme's default
     * @param ?string $query  without "?"; null when there is none
     * @param ?string $fragment without "#"; null when there is none
     */
    private function __construct(
        public string $scheme,
        public ?string $authority,
        public string $host,
        public ?int $port,
        public string $path,
        public ?string $query,
        public ?string $fragment,
    ) {
    }

    /**
     * Check and encode a URL (an absolute one, or a reference to resolve()).
     *
     * @throws \InvalidArgumentException when it cannot be sent: a control
     *         character, a host that is not a host name, a bad port
     */
    public static function parse(string $url): self
    {
        $url = trim($url, ' '); // as browsers do; inner spaces are encoded
        self::refuseControlCharacters($url);
        if (preg_match(self::PARTS, $url, $m, PREG_UNMATCHED_AS_NULL) !== 1) {
            throw new \InvalidArgumentException("fetch(): '$url' is not a URL"); // unreachable: the pattern takes any string
        }
        [$authority, $host, $port] = isset($m[2]) ? self::authority($m[2]) : [null, '', null];
        return new self(
            strtolower((string)$m[1]),
            $authority,
            $host,
            $port,
            self::encode((string)$m[3], self::ENCODE_IN_PATH),
            isset($m[4]) ? self::encode($m[4], self::ENCODE_IN_PATH) : null,
            isset($m[5]) ? self::encode($m[5], self::ENCODE_IN_PATH) : null,
        );
    }

    /**
     * The URL with $query appended to its own query (RFC 3986-encoded:
     * spaces as %20, arrays as PHP writes them, a[0]=…).
     *
     * @param array<array-key, mixed> $query
     */
    public function withQuery(array $query): self
    {
        $more = http_build_query($query, '', '&', PHP_QUERY_RFC3986);
        if ($more === '') {
            return $this;
        }
        $own = $this->query ?? '';
        $query = $own === '' || str_ends_with($own, '&') ? $own . $more : "$own&$more";
        return new self($this->scheme, $this->authority, $this->host, $this->port, $this->path, $query, $this->fragment);
    }

    /**
     * A reference (a redirect's Location) resolved against this URL, as
     * RFC 3986 section 5.2 says.
     *
     * @throws \InvalidArgumentException when the reference cannot be sent
     */
    public function resolve(string $reference): self
    {
        $ref = self::parse($reference);
        if ($ref->scheme !== '') {
            return $ref->withPath(self::removeDotSegments($ref->path));
        }
        if ($ref->authority !== null) {
            return new self($this->scheme, $ref->authority, $ref->host, $ref->port, self::removeDotSegments($ref->path), $ref->query, $ref->fragment);
        }
        if ($ref->path === '') {
            return new self($this->scheme, $this->authority, $this->host, $this->port, $this->path, $ref->query ?? $this->query, $ref->fragment);
        }
        $path = str_starts_with($ref->path, '/') ? $ref->path : $this->merge($ref->path);
        return new self($this->scheme, $this->authority, $this->host, $this->port, self::removeDotSegments($path), $ref->query, $ref->fragment);
    }

    /** Scheme, host (without a trailing dot) and port (the default one filled in), RFC 6454's origin. */
    public function origin(): string
    {
        return sprintf('%s://%s:%d', $this->scheme, rtrim($this->host, '.'), $this->port ?? self::DEFAULT_PORTS[$this->scheme] ?? 0);
    }

    public function __toString(): string
    {
        return ($this->scheme !== '' ? "$this->scheme:" : '')
            . ($this->authority !== null ? "//$this->authority" : '')
            . $this->path
            . ($this->query !== null ? "?$this->query" : '')
            . ($this->fragment !== null ? "#$this->fragment" : '');
    }

    /** @throws \InvalidArgumentException naming the first control character and where it is */
    private static function refuseControlCharacters(string $url): void
    {
        if (preg_match('/[\x00-\x1F\x7F]/', $url, $m, PREG_OFFSET_CAPTURE) !== 1) {
            return;
        }
        [$char, $offset] = $m[0];
        $name = match ($char) {
            "\r", "\n" => 'a line break',
            "\t" => 'a tab',
            "\0" => 'a NUL byte',
            default => 'a control character',
        };
        throw new \InvalidArgumentException(sprintf(
            "fetch(): the URL holds %s (byte 0x%02X) at offset %d, which no URL can carry; percent-encode it (%%%02X) if the supplier expects it: %s",
            $name,
            ord($char),
            $offset,
            ord($char),
            json_encode($url, JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE),
        ));
    }

    /**
     * userinfo@host:port, checked: the userinfo encoded, the host a name
     * (IDN to punycode) or an IP literal, the port a number.
     *
     * @return array{0: string, 1: string, 2: ?int} the authority to send, the host (lower case), the port
     * @throws \InvalidArgumentException for a host that is not one, or a bad port
     */
    private static function authority(string $authority): array
    {
        $at = strrpos($authority, '@');
        $userinfo = $at === false ? null : self::encode(substr($authority, 0, $at), self::ENCODE_IN_USERINFO);
        $hostPort = $at === false ? $authority : substr($authority, $at + 1);
        if (preg_match('/^(\[[^\]]*\]|[^:]*)(?::([^:]*))?$/', $hostPort, $m) !== 1) {
            throw new \InvalidArgumentException("fetch(): '$hostPort' is not a host and port");
        }
        $host = self::host($m[1]);
        $port = self::port($m[2] ?? '', $hostPort);
        $sent = ($userinfo !== null ? "$userinfo@" : '') . $host . ($port !== null ? ":$port" : '');
        return [$sent, strtolower($host), $port];
    }

    /** @throws \InvalidArgumentException for a host that is not a host name or an IP literal */
    private static function host(string $host): string
    {
        if (str_starts_with($host, '[')) {
            if (filter_var(substr($host, 1, -1), FILTER_VALIDATE_IP, FILTER_FLAG_IPV6) === false) {
                throw new \InvalidArgumentException("fetch(): the host $host is not an IPv6 address");
            }
            return $host;
        }
        if (preg_match('/[\x80-\xFF]/', $host) === 1) {
            $host = self::punycode($host);
        }
        if (preg_match('/^[A-Za-z0-9\-._~!$&\'()*+,;=]*$/', $host) !== 1) {
            throw new \InvalidArgumentException('fetch(): the host ' . json_encode($host, JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE) . ' is not a host name');
        }
        return $host;
    }

    /** @throws \InvalidArgumentException when the name cannot be converted */
    private static function punycode(string $host): string
    {
        if (!function_exists('idn_to_ascii')) {
            throw new \InvalidArgumentException("fetch(): the host '$host' is an international name: write it in punycode (xn--…), or install PHP's intl extension");
        }
        $ascii = idn_to_ascii($host, IDNA_DEFAULT, INTL_IDNA_VARIANT_UTS46);
        if ($ascii === false) {
            throw new \InvalidArgumentException('fetch(): the host ' . json_encode($host, JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE) . ' is not a valid international name');
        }
        return $ascii;
    }

    /** @throws \InvalidArgumentException for a port that is not a number from 1 to 65535 */
    private static function port(string $port, string $hostPort): ?int
    {
        if ($port === '') {
            return null;
        }
        if (preg_match('/^\d{1,5}$/', $port) !== 1 || (int)$port < 1 || (int)$port > 65535) {
            throw new \InvalidArgumentException("fetch(): the port in '$hostPort' is not a number from 1 to 65535");
        }
        return (int)$port;
    }

    /** Percent-encode every byte the pattern matches (uppercase hex, as RFC 3986 prefers). */
    private static function encode(string $part, string $pattern): string
    {
        return preg_replace_callback($pattern, static fn (array $m): string => sprintf('%%%02X', ord($m[0])), $part) ?? $part;
    }

    private function withPath(string $path): self
    {
        return new self($this->scheme, $this->authority, $this->host, $this->port, $path, $this->query, $this->fragment);
    }

    /** RFC 3986 5.2.3: a relative path against this URL's. */
    private function merge(string $path): string
    {
        if ($this->authority !== null && $this->path === '') {
            return "/$path";
        }
        $slash = strrpos($this->path, '/');
        return ($slash === false ? '' : substr($this->path, 0, $slash + 1)) . $path;
    }

    /** RFC 3986 5.2.4: "." and ".." segments resolved. */
    private static function removeDotSegments(string $path): string
    {
        $out = [];
        $segments = explode('/', $path);
        $last = count($segments) - 1;
        foreach ($segments as $i => $segment) {
            if ($segment === '.' || $segment === '..') {
                if ($segment === '..' && count($out) > 1) {
                    array_pop($out);
                }
                if ($i === $last) {
                    $out[] = ''; // "a/b/.." is "a/", not "a"
                }
                continue;
            }
            $out[] = $segment;
        }
        $result = implode('/', $out);
        return str_starts_with($path, '/') && !str_starts_with($result, '/') ? "/$result" : $result;
    }
}

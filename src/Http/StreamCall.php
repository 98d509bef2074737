<?php

declare(strict_types=1);

namespace Aggregator\Http;

/**
 * What one open of an http:// or https:// stream asks for, read from its
 * stream context the way PHP's own wrapper reads it, as fetch() options:
 * http method, header (a string or an array of lines), user_agent,
 * content, timeout, follow_location, max_redirects, ignore_errors.
 *
 * An option the aggregator cannot honour (a proxy, a client certificate or
 * any other ssl option than the defaults, a Host header, a method fetch()
 * does not send) makes the call PHP's own: $native says why, and the
 * wrapper hands the open to PHP's wrapper, which then holds the worker.
 * protocol_version and request_fulluri without a proxy change nothing the
 * supplier sees in its answer, and are not honoured.
 *
 * @internal
 */
final class StreamCall
{
    /** ssl context options and the values that are what the aggregator does anyway. */
    private const SSL_DEFAULTS = [
        'verify_peer' => true,
        'verify_peer_name' => true,
        'allow_self_signed' => false,
        'SNI_enabled' => true,
        'capture_peer_cert' => false,
        'capture_peer_cert_chain' => false,
    ];

    /** ssl options that change nothing the aggregator's TLS would do differently. */
    private const SSL_IGNORED = ['disable_compression', 'verify_depth', 'ciphers', 'security_level'];

    /** Headers the aggregator's HTTP client writes itself. */
    private const OWN_HEADERS = ['content-length', 'connection'];

    /** The redirects PHP follows by default: max_redirects 20 means 19 (a 20th fails). */
    private const DEFAULT_MAX_REDIRECTS = 20;

    /**
     * @param array<string, mixed> $options fetch() options
     */
    private function __construct(
        public readonly array $options,
        public readonly bool $ignoreErrors,
        public readonly bool $followLocation,
        public readonly ?string $native = null,
        public readonly ?string $refusal = null,
    ) {
    }

    /**
     * @param array<string, array<string, mixed>> $context stream_context_get_options() of the open
     */
    public static function plan(string $mode, array $context): self
    {
        if (strpbrk($mode, 'waxc+') !== false) {
            return new self([], false, false, refusal: 'HTTP wrapper does not support writeable connections');
        }
        $http = $context['http'] ?? [];
        $why = self::nativeReason($http, $context['ssl'] ?? [], $context['socket'] ?? []);
        $headers = self::headers($http['header'] ?? null, $why);
        $method = strtoupper(is_string($http['method'] ?? null) ? $http['method'] : 'GET');
        if (!in_array($method, FetchOptions::METHODS, true)) {
            $why ??= "method $method";
        }
        $follow = (bool)($http['follow_location'] ?? true);
        $max = is_numeric($http['max_redirects'] ?? null) ? (int)$http['max_redirects'] : self::DEFAULT_MAX_REDIRECTS;
        $options = ['method' => $method, 'headers' => $headers, 'timeout' => self::timeout($http['timeout'] ?? null)];
        $content = $http['content'] ?? null;
        if (is_string($content) && $content !== '') {
            $options['body'] = $content;
            $options['headers'] += self::find($headers, 'content-type') === null ? ['Content-Type' => 'application/x-www-form-urlencoded'] : [];
        }
        if (self::find($headers, 'user-agent') === null) {
            $agent = is_string($http['user_agent'] ?? null) ? $http['user_agent'] : (string)ini_get('user_agent');
            if ($agent !== '') {
                $options['headers']['User-Agent'] = $agent;
            }
        }
        $options += FetchOptions::redirectsAsPhp($follow ? max(0, $max - 1) : 0);
        return new self($options, (bool)($http['ignore_errors'] ?? false), $follow, $why);
    }

    /**
     * Why PHP's own wrapper must make the call, or null.
     *
     * @param array<string, mixed> $http
     * @param array<string, mixed> $ssl
     * @param array<string, mixed> $socket
     */
    private static function nativeReason(array $http, array $ssl, array $socket): ?string
    {
        if (is_string($http['proxy'] ?? null) && $http['proxy'] !== '') {
            return 'proxy';
        }
        return self::sslReason($ssl) ?? (isset($socket['bindto']) ? 'socket option bindto' : null);
    }

    /**
     * The first ssl context option that asks for other TLS than the
     * aggregator's (a CA file, a client certificate, no verification), or null.
     *
     * @param array<string, mixed> $ssl
     */
    public static function sslReason(array $ssl): ?string
    {
        foreach ($ssl as $name => $value) {
            $default = self::SSL_DEFAULTS[$name] ?? null;
            if (!in_array($name, self::SSL_IGNORED, true) && ($default === null || (bool)$value !== $default)) {
                return "ssl option $name";
            }
        }
        return null;
    }

    /**
     * The header option (a string of lines or an array of them) as name =>
     * value; a repeated name is joined as HTTP joins it. A line that is
     * not "Name: value", or a Host header, sets $why.
     *
     * @return array<string, string>
     */
    private static function headers(mixed $option, ?string &$why): array
    {
        $lines = is_array($option) ? $option : [$option ?? ''];
        $headers = [];
        foreach ($lines as $line) {
            foreach (preg_split('/\r?\n/', (string)$line) ?: [] as $one) {
                if (trim($one) === '') {
                    continue;
                }
                if (preg_match('/^([!#$%&\'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$/', $one, $m) !== 1) {
                    $why ??= 'a header line that is not "Name: value"'; // its text may hold a key: not in the log
                    continue;
                }
                if (strcasecmp($m[1], 'host') === 0) {
                    $why ??= 'a Host header';
                    continue;
                }
                if (in_array(strtolower($m[1]), self::OWN_HEADERS, true)) {
                    continue;
                }
                $name = self::find($headers, $m[1]) ?? $m[1];
                $glue = strcasecmp($name, 'cookie') === 0 ? '; ' : ', ';
                $headers[$name] = isset($headers[$name]) ? $headers[$name] . $glue . $m[2] : $m[2];
            }
        }
        return $headers;
    }

    /**
     * The name under which $headers holds $name (any case), or null.
     *
     * @param array<string, string> $headers
     */
    private static function find(array $headers, string $name): ?string
    {
        foreach (array_keys($headers) as $key) {
            if (strcasecmp($key, $name) === 0) {
                return $key;
            }
        }
        return null;
    }

    /** The timeout option in seconds, else default_socket_timeout; null (the job's time) when none is set. */
    private static function timeout(mixed $option): ?float
    {
        $seconds = is_numeric($option) ? (float)$option : (float)ini_get('default_socket_timeout');
        return $seconds > 0 && is_finite($seconds) ? $seconds : null;
    }
}

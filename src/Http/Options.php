<?php

declare(strict_types=1);

namespace Aggregator\Http;

/**
 * The options of fetch() (SPEC §14), each checked on its own: anything PHP
 * cannot send, or the aggregator could not carry, is refused here, in the
 * translator's job, with an \InvalidArgumentException that names the
 * option (a NaN timeout, a header with a line break, a method outside
 * the list, a body that is not a string, ...).
 *
 * @internal
 */
final class Options
{
    public const KNOWN = ['method', 'headers', 'query', 'body', 'json', 'form', 'auth', 'timeout', 'redirects', 'redirect_headers', 'not_failures'];

    /** The methods fetch() makes (SPEC §14): not CONNECT, TRACE or made-up ones. */
    public const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

    /** The longest timeout, in seconds: a day. Above it a call waits on the job's time anyway, and Go's durations end at 292 years. */
    public const MAX_TIMEOUT = 86400.0;

    /** The body options: at most one of them. */
    private const BODIES = ['body', 'json', 'form'];

    /** json_encode flags for the json option. */
    private const JSON_FLAGS = JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION | JSON_THROW_ON_ERROR;

    /**
     * @param array<array-key, mixed> $options
     * @throws \InvalidArgumentException for an option fetch() does not know, or two that conflict
     */
    public static function check(array $options): void
    {
        foreach (array_keys($options) as $name) {
            if (!in_array($name, self::KNOWN, true)) {
                throw new \InvalidArgumentException(sprintf(
                    "fetch(): unknown option %s%s; the options are %s",
                    var_export($name, true),
                    self::suggestion((string)$name),
                    implode(', ', self::KNOWN),
                ));
            }
        }
        $bodies = array_keys(array_filter(array_intersect_key($options, array_flip(self::BODIES)), static fn ($v) => $v !== null));
        if (count($bodies) > 1) {
            throw new \InvalidArgumentException('fetch(): ' . implode(' and ', $bodies) . ' are both a body: give one of body, json and form');
        }
    }

    /** @throws \InvalidArgumentException for a method outside METHODS */
    public static function method(mixed $method): string
    {
        $upper = is_string($method) ? strtoupper($method) : null;
        if ($upper === null || !in_array($upper, self::METHODS, true)) {
            throw new \InvalidArgumentException(sprintf(
                'fetch(): method %s is not one fetch() makes; it makes %s',
                is_string($method) ? json_encode($method, JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE) : get_debug_type($method),
                implode(', ', self::METHODS),
            ));
        }
        return $upper;
    }

    /**
     * name => value pairs as [name, value], checked: a name is an HTTP
     * token, a value holds no control character but a tab (no line break,
     * no NUL) and is valid UTF-8, which is what the aggregator carries.
     *
     * @return list<array{0: string, 1: string}>
     * @throws \InvalidArgumentException naming the header
     */
    public static function headers(mixed $headers): array
    {
        if (!is_array($headers)) {
            throw new \InvalidArgumentException('fetch(): headers must be an array of name => value, got ' . get_debug_type($headers));
        }
        $out = [];
        foreach ($headers as $name => $value) {
            if (!is_string($name) || preg_match('/^[A-Za-z0-9!#$%&\'*+.^_`|~-]+$/', $name) !== 1) {
                throw new \InvalidArgumentException('fetch(): header names must be tokens like X-Api-Key, got ' . json_encode($name, JSON_INVALID_UTF8_SUBSTITUTE));
            }
            $out[] = [$name, self::headerValue($name, $value)];
        }
        return $out;
    }

    /**
     * The body, and the Content-Type it implies: body as given, json
     * encoded (application/json), form urlencoded
     * (application/x-www-form-urlencoded).
     *
     * @param array<array-key, mixed> $options
     * @return array{0: string, 1: ?string} body, Content-Type (null: none implied)
     * @throws \InvalidArgumentException for a body that is not a string, a json value that cannot be encoded, a form that is not an array
     */
    public static function body(array $options): array
    {
        if (isset($options['json'])) {
            try {
                return [json_encode($options['json'], self::JSON_FLAGS), 'application/json'];
            } catch (\JsonException $e) {
                throw new \InvalidArgumentException('fetch(): the json option cannot be encoded as JSON: ' . $e->getMessage(), 0, $e);
            }
        }
        if (isset($options['form'])) {
            if (!is_array($options['form'])) {
                throw new \InvalidArgumentException('fetch(): form must be an array of field => value, got ' . get_debug_type($options['form']));
            }
            return [http_build_query($options['form'], '', '&', PHP_QUERY_RFC1738), 'application/x-www-form-urlencoded'];
        }
        $body = $options['body'] ?? null;
        if ($body !== null && !is_string($body)) {
            throw new \InvalidArgumentException('fetch(): body must be a string or null, got ' . get_debug_type($body) . ' (json and form encode other values)');
        }
        return [$body ?? '', null];
    }

    /**
     * The Authorization header of auth: [user, password], HTTP Basic.
     *
     * @return array{0: string, 1: string}
     * @throws \InvalidArgumentException for anything else, or a user with ":"
     */
    public static function auth(mixed $auth): array
    {
        if (!is_array($auth) || !array_is_list($auth) || count($auth) !== 2 || !is_string($auth[0]) || !is_string($auth[1])) {
            throw new \InvalidArgumentException('fetch(): auth must be [user, password], two strings (HTTP Basic)');
        }
        [$user, $password] = $auth;
        if (str_contains($user, ':')) {
            throw new \InvalidArgumentException('fetch(): the auth user cannot hold ":" (HTTP Basic joins user and password with it)');
        }
        if (preg_match('/[\x00-\x1F\x7F]/', $user . $password) === 1) {
            throw new \InvalidArgumentException('fetch(): the auth user and password cannot hold control characters');
        }
        return ['Authorization', 'Basic ' . base64_encode("$user:$password")];
    }

    /**
     * The timeout in seconds, or null: what is left of the job's time.
     *
     * @throws \InvalidArgumentException for anything but a finite number of seconds above 0, at most MAX_TIMEOUT
     */
    public static function timeout(mixed $timeout): ?float
    {
        if ($timeout === null) {
            return null;
        }
        if ((!is_int($timeout) && !is_float($timeout)) || !is_finite((float)$timeout) || $timeout <= 0 || $timeout > self::MAX_TIMEOUT) {
            throw new \InvalidArgumentException(sprintf(
                'fetch(): timeout must be a number of seconds above 0 and at most %d, or null (what is left of the job\'s time); got %s',
                self::MAX_TIMEOUT,
                is_float($timeout) || is_int($timeout) ? var_export($timeout, true) : get_debug_type($timeout),
            ));
        }
        return (float)$timeout;
    }

    /**
     * redirects: how many to follow; 0: none, the 3xx is the answer.
     *
     * @return ?int null: the default, Request::DEFAULT_REDIRECTS
     * @throws \InvalidArgumentException for anything but an integer >= 0
     */
    public static function redirects(mixed $redirects): ?int
    {
        if ($redirects !== null && (!is_int($redirects) || $redirects < 0)) {
            throw new \InvalidArgumentException('fetch(): redirects must be how many redirects to follow, an integer from 0 (none: the 3xx is the answer), got ' . self::shown($redirects));
        }
        return $redirects;
    }

    /**
     * redirect_headers: true keeps the translator's headers on a redirect
     * to another origin (scheme, host, port), which by default carries none.
     *
     * @throws \InvalidArgumentException for anything but a bool
     */
    public static function redirectHeaders(mixed $keep): bool
    {
        if ($keep !== null && !is_bool($keep)) {
            throw new \InvalidArgumentException('fetch(): redirect_headers must be true (your headers go to the other hosts a redirect leads to) or false, got ' . self::shown($keep));
        }
        return $keep ?? false;
    }

    /**
     * not_failures: statuses that are normal answers of this call, never a
     * failure for its supplier's circuit breaker (docs/suppliers.md).
     *
     * @return list<int>
     * @throws \InvalidArgumentException for anything but a list of HTTP statuses (100-599)
     */
    public static function notFailures(mixed $statuses): array
    {
        $statuses ??= [];
        $valid = is_array($statuses) && array_is_list($statuses);
        foreach ($valid ? $statuses : [] as $status) {
            $valid = $valid && is_int($status) && $status >= 100 && $status <= 599;
        }
        if (!$valid) {
            throw new \InvalidArgumentException('fetch(): not_failures must be a list of HTTP statuses such as [404, 500], got ' . self::shown($statuses));
        }
        return $statuses;
    }

    /**
     * Whether the headers name one (any case).
     *
     * @param list<array{0: string, 1: string}> $headers
     */
    public static function has(array $headers, string $name): bool
    {
        foreach ($headers as [$have]) {
            if (strcasecmp($have, $name) === 0) {
                return true;
            }
        }
        return false;
    }

    /** @throws \InvalidArgumentException for a value that is not a string, or holds what a header cannot */
    private static function headerValue(string $name, mixed $value): string
    {
        if (!is_scalar($value)) {
            throw new \InvalidArgumentException("fetch(): header '$name' must be a string, got " . get_debug_type($value));
        }
        $value = (string)$value;
        if (preg_match('/[\x00-\x08\x0A-\x1F\x7F]/', $value, $m) === 1) {
            $what = match ($m[0]) {
                "\r", "\n" => 'a line break',
                "\0" => 'a NUL byte',
                default => sprintf('a control character (byte 0x%02X)', ord($m[0])),
            };
            throw new \InvalidArgumentException("fetch(): header '$name' holds $what, which no header can carry");
        }
        if (preg_match('//u', $value) !== 1) {
            throw new \InvalidArgumentException("fetch(): header '$name' is not valid UTF-8, which the aggregator cannot carry; encode the value (rawurlencode, base64) as the supplier expects");
        }
        return $value;
    }

    /** A value for a message: a number or a short string as it is, else its type. */
    private static function shown(mixed $value): string
    {
        return match (true) {
            is_int($value), is_float($value), is_bool($value) => var_export($value, true),
            is_string($value) && strlen($value) <= 40 => (string)json_encode($value, JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE),
            default => get_debug_type($value),
        };
    }

    /** ", did you mean 'timeout'?" for a near miss, else ''. */
    private static function suggestion(string $name): string
    {
        foreach (self::KNOWN as $known) {
            if (levenshtein(strtolower($name), $known) <= 2) {
                return ", did you mean '$known'?";
            }
        }
        return '';
    }
}

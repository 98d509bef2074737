<?php

declare(strict_types=1);

namespace Aggregator\Http;

use Aggregator\FetchException;
use Aggregator\Response;

/**
 * Performs fetch() calls in PHP itself, with PHP's http stream wrapper:
 * exec mode, `aggregator call` in exec mode, and code run outside a worker
 * (a PHPUnit test, a handlers file while it loads). It gives the same
 * responses and exceptions as the aggregator does in worker mode: redirects
 * followed (at most 20), 4xx/5xx returned as responses, the body capped at
 * aggregator.limit.output-size (env AGGREGATOR_OUTPUT_LIMIT), the job's
 * deadline (env AGGREGATOR_DEADLINE, Unix seconds) as the longest wait.
 *
 * @internal
 */
final class StreamTransport
{
    /** Seconds a call may take when neither the call nor the job says. */
    public const DEFAULT_TIMEOUT = 30.0;

    /** Redirects followed, as PHP's own default. */
    public const MAX_REDIRECTS = 20;

    /** Body bytes allowed when AGGREGATOR_OUTPUT_LIMIT is not set (the aggregator's default). */
    public const DEFAULT_BODY_LIMIT = 16 << 20;

    private const CHUNK = 65536;

    /** @throws FetchException when there is no answer */
    public function send(Request $request): Response
    {
        $timeout = $this->timeout($request);
        if ($timeout <= 0) {
            throw new FetchException($request->url, 'timeout', "$request->method $request->url: timeout: the job's time is up");
        }
        $start = microtime(true);
        $context = stream_context_create(['http' => [
            'method' => $request->method,
            'header' => implode('', array_map(static fn (array $h): string => "$h[0]: $h[1]\r\n", $request->headers)),
            'content' => $request->body === '' ? null : $request->body,
            'timeout' => $timeout,
            'ignore_errors' => true,
            'follow_location' => 1,
            'max_redirects' => self::MAX_REDIRECTS,
            'protocol_version' => 1.1,
        ]]);
        error_clear_last();
        $stream = @fopen($request->url, 'rb', false, $context);
        if ($stream === false) {
            $message = (string)(error_get_last()['message'] ?? 'failed');
            throw $this->noAnswer($request, $message, $timeout, microtime(true) - $start >= $timeout - 0.05);
        }
        try {
            $headers = stream_get_meta_data($stream)['wrapper_data'] ?? [];
            $body = $this->readBody($request, $stream, $start + $timeout);
        } finally {
            fclose($stream);
        }
        [$status, $fields] = self::lastResponse(is_array($headers) ? $headers : []);
        return new Response($status, $fields, $body, $request->url);
    }

    /** Seconds to wait: the call's timeout, never past the job's deadline. */
    private function timeout(Request $request): float
    {
        $timeout = $request->timeout ?? self::DEFAULT_TIMEOUT;
        $deadline = getenv('AGGREGATOR_DEADLINE');
        if ($deadline !== false && is_numeric($deadline)) {
            $timeout = min($timeout, (float)$deadline - microtime(true));
        }
        return $timeout;
    }

    /**
     * @param resource $stream
     * @throws FetchException on a body over the limit or a timeout while reading it
     */
    private function readBody(Request $request, $stream, float $deadline): string
    {
        $limit = (int)(getenv('AGGREGATOR_OUTPUT_LIMIT') ?: self::DEFAULT_BODY_LIMIT);
        $parts = [];
        $size = 0;
        while (!feof($stream)) {
            $left = $deadline - microtime(true);
            if ($left <= 0) {
                throw new FetchException($request->url, 'timeout', "$request->method $request->url: timeout: the body did not arrive in time");
            }
            stream_set_timeout($stream, (int)$left, (int)(fmod($left, 1) * 1e6));
            $part = fread($stream, self::CHUNK);
            if ($part === false || ($part === '' && stream_get_meta_data($stream)['timed_out'])) {
                throw new FetchException($request->url, 'timeout', "$request->method $request->url: timeout: the body did not arrive in time");
            }
            $size += strlen($part);
            if ($size > $limit) {
                throw new FetchException($request->url, 'too_large', "$request->method $request->url: too_large: the body is over $limit bytes (aggregator.limit.output-size)");
            }
            $parts[] = $part;
        }
        return implode('', $parts);
    }

    /** A FetchException for a failed fopen(), its cause told by PHP's warning. */
    private function noAnswer(Request $request, string $warning, float $timeout, bool $timedOut): FetchException
    {
        $detail = preg_replace('/^fopen\([^)]*\): (Failed to open stream: )?/', '', $warning) ?? $warning;
        $cause = match (true) {
            $timedOut, str_contains($detail, 'timed out') => 'timeout',
            str_contains($detail, 'Connection refused') => 'refused',
            str_contains($detail, 'getaddrinfo'), str_contains($detail, 'Name or service not known') => 'dns',
            str_contains($detail, 'SSL'), str_contains($detail, 'certificate'), str_contains($detail, 'crypto') => 'tls',
            str_contains($detail, 'Redirection limit') => 'redirects',
            default => 'network',
        };
        // Worded as the aggregator words them in worker mode (fetch/fetch.go).
        $detail = match ($cause) {
            'timeout' => sprintf('no answer within %s s', rtrim(rtrim(sprintf('%.3f', $timeout), '0'), '.')),
            'refused' => 'connection refused',
            'dns' => 'cannot resolve ' . parse_url($request->url, PHP_URL_HOST),
            default => $detail,
        };
        return new FetchException($request->url, $cause, "$request->method $request->url: $cause: $detail");
    }

    /**
     * The status and headers of the last response in wrapper_data (which
     * lists every redirect hop's headers, each starting with its status line).
     *
     * @param string[] $lines
     * @return array{0: int, 1: array<string, string>}
     */
    private static function lastResponse(array $lines): array
    {
        $status = 0;
        $headers = [];
        foreach ($lines as $line) {
            if (preg_match('#^HTTP/\S+\s+(\d{3})#', $line, $m) === 1) {
                $status = (int)$m[1];
                $headers = [];
                continue;
            }
            [$name, $value] = array_map('trim', explode(':', $line, 2)) + [1 => ''];
            $name = strtolower($name);
            $headers[$name] = isset($headers[$name]) ? $headers[$name] . ', ' . $value : $value;
        }
        return [$status, $headers];
    }
}

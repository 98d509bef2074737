<?php

declare(strict_types=1);

namespace Aggregator\Http;

use Aggregator\FetchException;
use Aggregator\Response;

/**
 * Performs fetch() calls in PHP itself, with PHP's http stream wrapper:
 * exec mode, `aggregator call` in exec mode, and code run outside a worker
 * (a PHPUnit test, a handlers file while it loads). It gives the same
 * responses and exceptions as the aggregator does in worker mode:
 * redirects followed as Go follows them (Hop.php: at most the call's
 * redirects, 20 by default; no translator header on another host; no
 * link-local address), 4xx/5xx returned as responses, the body capped at
 * aggregator.limit.output-size (env AGGREGATOR_OUTPUT_LIMIT), the job's
 * deadline (env AGGREGATOR_DEADLINE, Unix seconds) as the longest wait.
 *
 * @internal
 */
final class StreamTransport
{
    /** Seconds a call may take when neither the call nor the job says. */
    public const DEFAULT_TIMEOUT = 30.0;

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
        $hop = Hop::first($request);
        for ($followed = 0; ; $followed++) {
            $stream = $this->open($request, $hop, $timeout, $start);
            [$status, $fields] = self::lastResponse(stream_get_meta_data($stream)['wrapper_data'] ?? []);
            try {
                $next = $hop->next($request, $status, $fields['location'] ?? null, $followed);
                if ($next === null) {
                    return new Response($status, $fields, $this->readBody($request, $stream, $start + $timeout), $request->url);
                }
            } finally {
                fclose($stream);
            }
            $hop = $next;
        }
    }

    /**
     * Send one hop and read its status line and headers, within what is
     * left of the call's $timeout since $start.
     *
     * @return resource
     * @throws FetchException when there is no answer
     */
    private function open(Request $request, Hop $hop, float $timeout, float $start)
    {
        $left = $timeout - (microtime(true) - $start);
        if ($left <= 0) {
            throw new FetchException($request->url, 'timeout', "$request->method $request->url: timeout: " . self::noAnswerWithin($timeout));
        }
        $context = stream_context_create(['http' => [
            'method' => $hop->method,
            'header' => implode('', array_map(static fn (array $h): string => "$h[0]: $h[1]\r\n", $hop->headers)),
            'content' => $hop->body === '' ? null : $hop->body,
            'timeout' => $left,
            'ignore_errors' => true,
            'follow_location' => 0, // Hop follows them, as the aggregator does
            'protocol_version' => 1.1,
        ]]);
        error_clear_last();
        $stream = @fopen((string)$hop->url, 'rb', false, $context);
        if ($stream === false) {
            $message = (string)(error_get_last()['message'] ?? 'failed');
            throw $this->noAnswer($request, $hop->url->host, $message, $timeout, microtime(true) - $start >= $timeout - 0.05);
        }
        return $stream;
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
    private function noAnswer(Request $request, string $host, string $warning, float $timeout, bool $timedOut): FetchException
    {
        $detail = preg_replace('/^fopen\([^)]*\): (Failed to open stream: )?/', '', $warning) ?? $warning;
        $cause = match (true) {
            $timedOut, str_contains($detail, 'timed out') => 'timeout',
            str_contains($detail, 'Connection refused') => 'refused',
            str_contains($detail, 'getaddrinfo'), str_contains($detail, 'Name or service not known') => 'dns',
            str_contains($detail, 'SSL'), str_contains($detail, 'certificate'), str_contains($detail, 'crypto') => 'tls',
            default => 'network',
        };
        // Worded as the aggregator words them in worker mode (fetch/fetch.go).
        $detail = match ($cause) {
            'timeout' => self::noAnswerWithin($timeout),
            'refused' => 'connection refused',
            'dns' => 'cannot resolve ' . $host,
            default => $detail,
        };
        return new FetchException($request->url, $cause, "$request->method $request->url: $cause: $detail");
    }

    private static function noAnswerWithin(float $timeout): string
    {
        return sprintf('no answer within %s s', rtrim(rtrim(sprintf('%.3f', $timeout), '0'), '.'));
    }

    /**
     * The status and headers of the response in wrapper_data (the last
     * status line and the headers after it: an interim 1xx comes first).
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

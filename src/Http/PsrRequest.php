<?php

declare(strict_types=1);

namespace Aggregator\Http;

use Psr\Http\Message\RequestInterface;

/**
 * A PSR-7 request as a fetch() call, for GuzzleHandler and Psr18Client.
 * Redirects are not followed by the aggregator when fetch() can be told
 * so: Guzzle's redirect middleware follows them, a PSR-18 client returns
 * them (as Guzzle's own sendRequest() does).
 *
 * @internal
 */
final class PsrRequest
{
    /**
     * @return array{0: string, 1: array<string, mixed>} the URL and the fetch() options
     */
    public static function call(RequestInterface $request, ?float $timeout): array
    {
        $headers = self::headers($request);
        $body = $request->getBody();
        if ($body->isSeekable()) {
            $body->rewind();
        }
        $content = $body->getContents();
        $options = ['method' => strtoupper($request->getMethod()), 'headers' => $headers,
            'body' => $content === '' ? null : $content, 'timeout' => $timeout];
        $options['redirects'] = 0; // PSR-18: a 3xx is the answer; redirects are the caller's
        return [(string)$request->getUri(), $options];
    }

    /** Why the aggregator cannot send the request as it is (a method fetch() does not send, another Host), or null. */
    public static function unsupported(RequestInterface $request): ?string
    {
        $method = strtoupper($request->getMethod());
        if (!in_array($method, FetchOptions::METHODS, true)) {
            return "the method $method";
        }
        $uri = $request->getUri();
        $authority = $uri->getHost() . ($uri->getPort() !== null ? ':' . $uri->getPort() : '');
        $host = $request->getHeaderLine('Host');
        if ($host !== '' && strcasecmp($host, $authority) !== 0) {
            return "a Host header ($host) other than the URI's";
        }
        try {
            // Checked without the body, which a stream that cannot seek gives only once.
            Request::from((string)$uri, ['method' => $method, 'headers' => self::headers($request)]);
        } catch (\InvalidArgumentException $e) {
            return $e->getMessage();
        } catch (\Aggregator\FetchException) {
            // No answer can come (another scheme): the call says so when it is made.
        }
        return null;
    }

    /**
     * The request's headers as fetch() takes them, but Host (the URI's).
     *
     * @return array<string, string>
     */
    private static function headers(RequestInterface $request): array
    {
        $headers = [];
        foreach ($request->getHeaders() as $name => $values) {
            if (strcasecmp((string)$name, 'host') !== 0) {
                $headers[(string)$name] = implode(strcasecmp((string)$name, 'cookie') === 0 ? '; ' : ', ', $values);
            }
        }
        return $headers;
    }
}

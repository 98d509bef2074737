<?php

declare(strict_types=1);

namespace Aggregator;

use Aggregator\Http\FetchOptions;
use Aggregator\Http\ResponseHead;
use Aggregator\Http\StreamCall;

/**
 * A drop-in \SoapClient whose calls go through the aggregator (SPEC §17):
 * change `new \SoapClient(` to `new \Aggregator\SoapClient(` and, in a
 * worker's job, every call becomes a fetch() call, so the job waits without
 * holding the worker. PHP's SoapClient opens its own sockets; overriding
 * __doRequest() is PHP's documented way to give it another transport.
 *
 * It sends what PHP's SoapClient sends (SOAPAction or the SOAP 1.2 action,
 * the Content-Type, User-Agent PHP-SOAP/version, login/password as Basic,
 * its cookies, the stream_context's http header lines, compression) and
 * answers as it does: an HTTP error without an XML body is a SoapFault
 * "HTTP" with the reason ("Not Found"), no answer is "Could not connect to
 * host", a Fault body is the server's fault; trace, exceptions,
 * __getLastRequestHeaders() and __getLastResponseHeaders(), Set-Cookie and
 * __getCookies() work as they do. The WSDL is read through the worker's
 * http:// wrapper (StreamWrapper), as a job's file_get_contents() is.
 *
 * PHP's own transport makes the call outside a job (exec mode, a test, a
 * handlers file loading) and for what the aggregator cannot do: a proxy
 * (proxy_host), Digest authentication, a client certificate or other ssl
 * options of the stream context. connection_timeout plus
 * default_socket_timeout bound a call, within the job's time.
 */
class SoapClient extends \SoapClient
{
    public function __doRequest(string $request, string $location, string $action, int $version, bool $oneWay = false): ?string
    {
        if (!Fetch::inJob() || $this->needsOwnTransport($location)) {
            return parent::__doRequest($request, $location, $action, $version, $oneWay);
        }
        $encoding = [];
        $body = $this->compress($request, $encoding);
        $headers = $this->requestHeaders($action, $version, $encoding);
        $options = ['method' => 'POST', 'headers' => $headers, 'body' => $body, 'timeout' => $this->timeout()];
        // As PHP's SoapClient: max_redirects of the stream context, else 20, which follows 19.
        $max = $this->contextOption('http', 'max_redirects');
        $options += FetchOptions::redirectsAsPhp(max(0, (is_numeric($max) ? (int)$max : 20) - 1));
        if ($this->parentProperty('trace') === true) {
            $this->setParentProperty('__last_request_headers', $this->requestHead($location, $headers, strlen($body)));
        }
        try {
            $answer = Fetch::all([[$location, $options]])[0];
        } catch (\InvalidArgumentException) {
            // A stream_context header fetch() refuses: PHP's transport sends it as it is.
            return parent::__doRequest($request, $location, $action, $version, $oneWay);
        }
        if ($answer instanceof FetchException) {
            return $this->fault(self::noAnswer($answer));
        }
        if ($this->parentProperty('trace') === true) {
            $this->setParentProperty('__last_response_headers', implode("\r\n", ResponseHead::lines($answer)) . "\r\n");
        }
        $this->keepCookies($answer, $location);
        if ($answer->status >= 400 && !self::isXml($answer)) {
            return $this->fault(ResponseHead::reason($answer->status) ?: "HTTP $answer->status");
        }
        return $oneWay ? null : $answer->body;
    }

    /** What makes PHP's own transport make this call: a proxy, Digest, ssl options, another scheme. */
    private function needsOwnTransport(string $location): bool
    {
        $scheme = strtolower((string)parse_url($location, PHP_URL_SCHEME));
        return ($scheme !== 'http' && $scheme !== 'https')
            || $this->parentProperty('_proxy_host') !== null
            || $this->parentProperty('_use_digest') === true
            || StreamCall::sslReason($this->contextOptions()['ssl'] ?? []) !== null;
    }

    /**
     * The headers PHP's SoapClient sends, in its order (Host, Connection
     * and Content-Length are the aggregator's).
     *
     * @param array<string, string> $encoding the request's Content-Encoding, if compressed
     * @return array<string, string>
     */
    private function requestHeaders(string $action, int $version, array $encoding): array
    {
        $agent = $this->parentProperty('_user_agent') ?? $this->contextOption('http', 'user_agent')
            ?? ((string)ini_get('user_agent') !== '' ? (string)ini_get('user_agent') : 'PHP-SOAP/' . PHP_VERSION);
        $headers = ($agent === '' ? [] : ['User-Agent' => (string)$agent]) + $encoding;
        $type = $this->contextOption('http', 'content_type');
        if ($version === SOAP_1_2) {
            $headers['Content-Type'] = (is_string($type) && $type !== '' ? $type : 'application/soap+xml; charset=utf-8') . "; action=\"$action\"";
        } else {
            $headers['Content-Type'] = is_string($type) && $type !== '' ? $type : 'text/xml; charset=utf-8';
            $headers['SOAPAction'] = "\"$action\"";
        }
        $login = $this->parentProperty('_login');
        if (is_string($login)) {
            $headers['Authorization'] = 'Basic ' . base64_encode($login . ':' . (string)$this->parentProperty('_password'));
        }
        $cookies = $this->parentProperty('_cookies');
        $cookie = $this->cookieHeader(is_array($cookies) ? $cookies : []);
        if ($cookie !== '') {
            $headers['Cookie'] = $cookie;
        }
        return $headers + $this->contextHeaders(is_string($login), $cookies !== null);
    }

    /**
     * The stream_context's http header lines (a string, as SoapClient reads
     * them), but for those it sets itself.
     *
     * @return array<string, string>
     */
    private function contextHeaders(bool $hasAuthorization, bool $hasCookies): array
    {
        $option = $this->contextOption('http', 'header');
        $skip = ['host', 'connection', 'user-agent', 'content-length', 'content-type', 'proxy-authorization'];
        $skip = [...$skip, ...($hasAuthorization ? ['authorization'] : []), ...($hasCookies ? ['cookie'] : [])];
        $headers = [];
        foreach (preg_split('/\r?\n/', is_string($option) ? $option : '') ?: [] as $line) {
            if (preg_match('/^\s*([^:\s]+)\s*:\s*(.*?)\s*$/', $line, $m) === 1 && !in_array(strtolower($m[1]), $skip, true)) {
                $headers[$m[1]] = $m[2];
            }
        }
        return $headers;
    }

    /**
     * The request body, compressed as the compression option asks
     * (SOAP_COMPRESSION_GZIP or _DEFLATE with a level); Accept-Encoding is
     * the aggregator's, which decompresses what it asked for.
     *
     * @param array<string, string> $headers gets the Content-Encoding
     */
    private function compress(string $request, array &$headers): string
    {
        $compression = $this->parentProperty('compression');
        $level = is_int($compression) ? min($compression & 0x0f, 9) : 0;
        if ($level === 0) {
            return $request;
        }
        if (($compression & SOAP_COMPRESSION_DEFLATE) !== 0) {
            $headers['Content-Encoding'] = 'deflate';
            return (string)gzcompress($request, $level);
        }
        $headers['Content-Encoding'] = 'gzip';
        return (string)gzencode($request, $level);
    }

    /** Seconds a call may take: connect and read, as PHP's transport allows them one after the other. */
    private function timeout(): ?float
    {
        $read = (float)ini_get('default_socket_timeout');
        $connect = (int)$this->parentProperty('_connection_timeout');
        $total = max(0.0, $read) + max(0, $connect);
        return $total > 0 ? $total : null;
    }

    /**
     * The Cookie header from the cookies the client keeps (its own
     * Set-Cookie handling and __setCookie()), as PHP's SoapClient sends them.
     *
     * @param array<string, mixed> $cookies name => [value, path?, domain?, secure?]
     */
    private function cookieHeader(array $cookies): string
    {
        $pairs = [];
        foreach ($cookies as $name => $cookie) {
            if (is_array($cookie) && is_string($cookie[0] ?? null)) {
                $pairs[] = "$name=$cookie[0]";
            }
        }
        return implode('; ', $pairs);
    }

    /** Keep the answer's cookies the way PHP's SoapClient keeps them (__getCookies()). */
    private function keepCookies(Response $response, string $location): void
    {
        $cookies = $this->parentProperty('_cookies');
        $cookies = is_array($cookies) ? $cookies : [];
        foreach (ResponseHead::fields($response)['Set-Cookie'] ?? [] as $line) {
            $parts = array_map('trim', explode(';', $line));
            [$name, $value] = array_pad(explode('=', (string)array_shift($parts), 2), 2, null);
            if ($value === null || $name === '') {
                continue;
            }
            $path = (string)(parse_url($location, PHP_URL_PATH) ?? '/');
            // Without a path= of its own, the cookie's path is the URL's up to its last "/", as PHP's keeps it.
            $cookie = [$value, substr($path, 0, (int)strrpos($path, '/')), (string)parse_url($location, PHP_URL_HOST)];
            foreach ($parts as $part) {
                match (true) {
                    str_starts_with($part, 'path=') => $cookie[1] = substr($part, 5),
                    str_starts_with($part, 'domain=') => $cookie[2] = substr($part, 7),
                    $part === 'secure' => $cookie[3] = true,
                    default => null,
                };
            }
            $cookies[$name] = $cookie;
        }
        if ($cookies !== []) {
            $this->setParentProperty('_cookies', $cookies);
        }
    }

    /**
     * The request's head as PHP's SoapClient shows it in
     * __getLastRequestHeaders().
     *
     * @param array<string, string> $headers
     */
    private function requestHead(string $location, array $headers, int $length): string
    {
        $url = parse_url($location);
        $target = ($url['path'] ?? '/') . (isset($url['query']) ? "?$url[query]" : '');
        $host = ($url['host'] ?? '') . (isset($url['port']) ? ":$url[port]" : '');
        $lines = ["POST $target HTTP/1.1", "Host: $host", 'Connection: Keep-Alive'];
        foreach ($headers as $name => $value) {
            $lines[] = "$name: $value";
            if ($name === (isset($headers['SOAPAction']) ? 'SOAPAction' : 'Content-Type')) {
                $lines[] = "Content-Length: $length"; // where PHP's SoapClient puts it
            }
        }
        return implode("\r\n", $lines) . "\r\n\r\n";
    }

    /** The SoapFault PHP's transport gives when there was no answer. */
    private static function noAnswer(FetchException $e): string
    {
        return match ($e->cause) {
            'refused', 'dns', 'tls' => 'Could not connect to host',
            'timeout', 'network' => 'Error Fetching http headers',
            'redirects' => 'Redirection limit reached, aborting',
            default => $e->getMessage(),
        };
    }

    /** Whether an error answer carries XML (a SOAP Fault), which SoapClient then reads. */
    private static function isXml(Response $response): bool
    {
        $type = strtolower(trim(explode(';', $response->header('content-type') ?? '')[0]));
        if ($type === 'text/xml' || $type === 'application/soap+xml') {
            return $response->body !== '';
        }
        return str_starts_with(ltrim($response->body, "\x00..\x1f"), '<?xml');
    }

    /** Fail the call as PHP's transport does: SoapClient then throws the fault, or returns it (exceptions => false). */
    private function fault(string $message): ?string
    {
        $this->setParentProperty('__soap_fault', new \SoapFault('HTTP', $message));
        return null;
    }

    private function contextOption(string $wrapper, string $name): mixed
    {
        return $this->contextOptions()[$wrapper][$name] ?? null;
    }

    /** @return array<string, array<string, mixed>> */
    private function contextOptions(): array
    {
        $context = $this->parentProperty('_stream_context');
        return is_resource($context) ? stream_context_get_options($context) : [];
    }

    /** A private property of PHP's SoapClient, where it keeps its options and state. */
    private function parentProperty(string $name): mixed
    {
        return (new \ReflectionProperty(\SoapClient::class, $name))->getValue($this);
    }

    private function setParentProperty(string $name, mixed $value): void
    {
        (new \ReflectionProperty(\SoapClient::class, $name))->setValue($this, $value);
    }
}

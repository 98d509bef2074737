<?php

declare(strict_types=1);

namespace Aggregator\Http;

use Aggregator\Fetch;
use Aggregator\FetchException;
use Aggregator\Response;

/**
 * The http:// and https:// stream wrapper of a worker (SPEC §17): in a
 * job, file_get_contents(), fopen(), file(), copy(), SoapClient's WSDL
 * download and whatever else opens an http(s) URL become fetch() calls, so
 * the job's Fiber waits while the aggregator performs the call, with the
 * results and warnings of PHP's own wrapper (OpenFailure). Outside a job (a
 * handlers file loading, the reset hook, a Fiber of the translator's own)
 * and for a context the aggregator cannot honour (StreamCall), PHP's own
 * wrapper makes the call.
 *
 * The stream serves the body from memory. stream_get_meta_data()'s
 * wrapper_data is this object: foreach, [$i] and count() give the lines PHP
 * puts there ("HTTP/1.1 200 OK", "Content-Type: ..."). PHP sets no
 * $http_response_header for a user wrapper: last_response_headers() gives
 * those lines instead (functions.php).
 *
 * Installed by the worker unless aggregator.worker.http-wrapper=false (env
 * AGGREGATOR_HTTP_WRAPPER=false); exec mode keeps PHP's wrapper.
 *
 * @implements \IteratorAggregate<int, string>
 * @implements \ArrayAccess<int, string>
 */
final class StreamWrapper implements \IteratorAggregate, \ArrayAccess, \Countable
{
    /** The schemes taken over, those of them PHP has (https needs openssl). */
    public const SCHEMES = ['http', 'https'];

    /** The env var that turns the wrapper off ("false" or "0"). */
    public const ENV = 'AGGREGATOR_HTTP_WRAPPER';

    /** PHP's STREAM_ONLY_GET_HEADERS option: get_headers() is opening. */
    private const ONLY_GET_HEADERS = 512;

    /** @var resource|null set by PHP: the stream context of the open */
    public $context;

    private string $body = '';
    private int $position = 0;
    private bool $drained = false;

    /** @var list<string>|null the header lines, made from $response when asked for */
    private ?array $lines = null;

    private ?Response $response = null;

    /** @var resource|null PHP's own stream, when it made the call */
    private $native = null;

    /** @var array<string, true> why calls went to PHP's own wrapper, each logged once */
    private static array $noted = [];

    /** Take over http:// and https:// unless the env var says not to. */
    public static function installUnlessOff(): void
    {
        $env = getenv(self::ENV);
        if ($env === false || filter_var($env, FILTER_VALIDATE_BOOL, FILTER_NULL_ON_FAILURE) !== false) {
            self::install();
        }
    }

    /** Take over http:// and https:// for the rest of the process. */
    public static function install(): void
    {
        foreach (array_intersect(self::SCHEMES, stream_get_wrappers()) as $scheme) {
            self::register($scheme);
        }
    }

    /** Whether the wrapper serves http:// now. */
    public static function installed(): bool
    {
        return isset(self::$registered['http']);
    }

    /** @var array<string, true> the schemes taken over */
    private static array $registered = [];

    private static function register(string $scheme): void
    {
        stream_wrapper_unregister($scheme);
        stream_wrapper_register($scheme, self::class, STREAM_IS_URL);
        self::$registered[$scheme] = true;
    }

    public function stream_open(string $path, string $mode, int $options, ?string &$openedPath): bool
    {
        OpenFailure::disarm();
        if (($options & self::ONLY_GET_HEADERS) !== 0 && Fetch::inJob()) {
            OpenFailure::arm('get_headers() cannot run through the aggregator\'s http:// wrapper '
                . '(PHP takes its headers only from its own wrapper): call \Aggregator\get_headers() instead');
            return false;
        }
        $call = StreamCall::plan($mode, $this->contextOptions());
        if ($call->refusal !== null) {
            OpenFailure::arm($call->refusal);
            return false;
        }
        if (!Fetch::inJob()) {
            return $this->openNative($path, $mode);
        }
        if ($call->native !== null) {
            self::note($call->native);
            return $this->openNative($path, $mode);
        }
        try {
            $answer = Fetch::all([[$path, $call->options]])[0];
        } catch (\InvalidArgumentException $e) {
            // fetch() refuses what PHP's wrapper sends as it is (a header byte, say); it threw before any wait.
            self::note('a URL or header fetch() refuses', $e->getMessage());
            return $this->openNative($path, $mode);
        } catch (\Throwable $e) {
            OpenFailure::arm(null); // cancelled: the exception is the news, not a warning
            throw $e;
        }
        return $answer instanceof Response ? $this->answered($answer, $call) : $this->failed($path, $answer);
    }

    public function stream_read(int $count): string|false
    {
        if ($this->native !== null) {
            return fread($this->native, $count);
        }
        $chunk = substr($this->body, $this->position, $count);
        $this->position += strlen($chunk);
        $this->drained = $chunk === '';
        return $chunk;
    }

    /** As on a socket, the end shows once a read finds nothing more (a feof() loop reads a last false). */
    public function stream_eof(): bool
    {
        return $this->native !== null ? feof($this->native) : $this->drained;
    }

    /** @return array<string, int> */
    public function stream_stat(): array
    {
        return [];
    }

    public function stream_close(): void
    {
        if ($this->native !== null) {
            fclose($this->native);
            $this->native = null;
        }
    }

    /** Timeouts and blocking: the body is here already, except on PHP's own stream. */
    public function stream_set_option(int $option, int $arg1, ?int $arg2): bool
    {
        return match (true) {
            $this->native !== null && $option === STREAM_OPTION_READ_TIMEOUT => stream_set_timeout($this->native, $arg1, (int)$arg2),
            $this->native !== null && $option === STREAM_OPTION_BLOCKING => stream_set_blocking($this->native, $arg1 !== 0),
            default => $option === STREAM_OPTION_READ_TIMEOUT || $option === STREAM_OPTION_BLOCKING,
        };
    }

    /**
     * http URLs have no stat in PHP (file_exists() is false), but libxml
     * (SoapClient's WSDL, DOMDocument::load) stats a URL before it opens it
     * through a user wrapper: it gets a readable file, the stat family false.
     *
     * @return array<string, int>|false
     */
    public function url_stat(string $path, int $flags): array|false
    {
        $caller = debug_backtrace(DEBUG_BACKTRACE_IGNORE_ARGS, 2)[1] ?? [];
        if (($caller['class'] ?? '') === 'SplFileInfo' || preg_match('/^(file_exists|is_\w+|file\w*time|file(size|inode|owner|group|perms|type)|l?stat)$/', $caller['function'] ?? '') === 1) {
            return false;
        }
        return ['mode' => 0100444];
    }

    /** @return \ArrayIterator<int, string> */
    public function getIterator(): \ArrayIterator
    {
        return new \ArrayIterator($this->lines());
    }

    public function offsetExists(mixed $offset): bool
    {
        return isset($this->lines()[$offset]);
    }

    public function offsetGet(mixed $offset): ?string
    {
        return $this->lines()[$offset] ?? null;
    }

    public function offsetSet(mixed $offset, mixed $value): void
    {
        throw new \LogicException('the response headers of a stream are read-only');
    }

    public function offsetUnset(mixed $offset): void
    {
        throw new \LogicException('the response headers of a stream are read-only');
    }

    public function count(): int
    {
        return count($this->lines());
    }

    /** @return list<string> */
    private function lines(): array
    {
        return $this->lines ??= $this->response !== null ? ResponseHead::lines($this->response) : [];
    }

    /** @return array<string, array<string, mixed>> */
    private function contextOptions(): array
    {
        return stream_context_get_options(is_resource($this->context) ? $this->context : stream_context_get_default());
    }

    /** An answer: the stream, or PHP's failure for a status it fails on. */
    private function answered(Response $response, StreamCall $call): bool
    {
        $this->response = $response;
        LastResponse::remember($response);
        if ($call->followLocation && in_array($response->status, [300, 301, 302, 303, 307, 308], true) && $response->header('location') !== null) {
            OpenFailure::arm('Redirection limit reached, aborting');
            return false;
        }
        if ($response->status >= 400 && !$call->ignoreErrors) {
            OpenFailure::arm('HTTP request failed! ' . ResponseHead::statusLine($response->status) . "\r\n");
            return false;
        }
        $this->body = $response->body;
        return true;
    }

    /** No answer: PHP's warnings for the same failure. */
    private function failed(string $url, FetchException $e): bool
    {
        LastResponse::remember(null);
        [$detail, $before] = NativeWarnings::forFailure($url, $e);
        OpenFailure::arm($detail, $before);
        return false;
    }

    /**
     * Let PHP's own wrapper make the call: the scheme is given back to
     * PHP for the fopen() and taken again (each take costs PHP ~110 bytes
     * until the process ends, so this path is for the exceptions).
     */
    private function openNative(string $path, string $mode): bool
    {
        $scheme = strtolower((string)parse_url($path, PHP_URL_SCHEME));
        $warnings = [];
        stream_wrapper_restore($scheme);
        set_error_handler(static function (int $type, string $message) use (&$warnings): bool {
            $warnings[] = $message;
            return true;
        });
        try {
            $stream = fopen($path, $mode, false, is_resource($this->context) ? $this->context : stream_context_get_default());
            $headers = $http_response_header ?? null;
        } finally {
            restore_error_handler();
            self::register($scheme);
        }
        LastResponse::remember($headers);
        if ($stream === false) {
            [$detail, $before] = NativeWarnings::fromNative($warnings);
            OpenFailure::arm($detail, $before);
            return false;
        }
        $this->native = $stream;
        $this->lines = $headers ?? [];
        return true;
    }

    /**
     * Log once per worker and reason why calls go to PHP's own wrapper:
     * they hold the worker meanwhile. $detail (the first call's) is logged
     * but not part of the reason, so the reasons stay few.
     */
    private static function note(string $why, string $detail = ''): void
    {
        if (!isset(self::$noted[$why])) {
            self::$noted[$why] = true;
            error_log("worker: an http(s) stream with $why is opened by PHP's own wrapper, which holds this worker until it answers (docs/porting.md)"
                . ($detail !== '' ? ": $detail" : ''));
        }
    }
}

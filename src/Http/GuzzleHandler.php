<?php

declare(strict_types=1);

namespace Aggregator\Http;

use Aggregator\Fetch;
use Aggregator\FetchException;
use Aggregator\Response;
use GuzzleHttp\Exception\ConnectException;
use GuzzleHttp\Exception\RequestException;
use GuzzleHttp\Promise\Promise;
use GuzzleHttp\Promise\PromiseInterface;
use GuzzleHttp\Psr7;
use GuzzleHttp\TransferStats;
use Psr\Http\Message\RequestInterface;
use Psr\Http\Message\ResponseInterface;

/**
 * A Guzzle 7 handler whose requests go through the aggregator (SPEC §17):
 *
 *     $client = new \GuzzleHttp\Client(['handler' => \GuzzleHttp\HandlerStack::create(new \Aggregator\Http\GuzzleHandler())]);
 *
 * Like Guzzle's curl multi handler it queues the requests it is given and
 * sends them when a promise is waited on, all at once: in a worker's job
 * that is one fetch() batch, one suspension of the job, so concurrent
 * promises, Utils::all() and GuzzleHttp\Pool have their calls in flight
 * together while the worker runs other jobs. The middleware of the stack
 * (redirects, http_errors, cookies, retries) work as with any handler.
 *
 * No answer rejects with a ConnectException whose previous is the
 * FetchException (its cause: refused, dns, timeout, ...). Options honoured:
 * timeout (else connect_timeout plus read_timeout, else the job's time),
 * sink, on_headers, on_stats, delay (it sleeps, as Guzzle's stream handler
 * does, holding the worker), decode_content. Guzzle's own default handler
 * sends a request outside a job (PHP makes the call) and one the aggregator
 * cannot send as asked: proxy, cert, ssl_key, verify other than true,
 * force_ip_resolve, Digest or NTLM auth, another method or Host.
 */
final class GuzzleHandler
{
    /** Options only Guzzle's own handlers can honour. */
    private const OWN_OPTIONS = ['proxy', 'cert', 'ssl_key', 'force_ip_resolve'];

    /** @var array<int, array{0: RequestInterface, 1: array<string, mixed>, 2: Promise}> requests not sent yet */
    private array $queue = [];

    private int $next = 0;

    /** @var (callable(RequestInterface, array<string, mixed>): PromiseInterface)|null */
    private $fallback = null;

    /**
     * @param (callable(RequestInterface, array<string, mixed>): PromiseInterface)|null $fallback
     *        the handler for what the aggregator does not send; default Guzzle's (Utils::chooseHandler())
     */
    public function __construct(?callable $fallback = null)
    {
        $this->fallback = $fallback;
    }

    /** @param array<string, mixed> $options */
    public function __invoke(RequestInterface $request, array $options): PromiseInterface
    {
        if (!Fetch::inJob() || self::unsupported($request, $options) !== null) {
            $this->fallback ??= \GuzzleHttp\Utils::chooseHandler();
            return ($this->fallback)($request, $options);
        }
        if (isset($options['delay'])) {
            usleep((int)($options['delay'] * 1000));
        }
        $id = ++$this->next;
        $promise = new Promise(
            function (): void {
                $this->flush();
            },
            function () use ($id): void {
                unset($this->queue[$id]);
            },
        );
        $this->queue[$id] = [$request, $options, $promise];
        return $promise;
    }

    /**
     * Send every request queued so far, at once, and settle their
     * promises. A promise's wait() calls it; so may code that wants the
     * calls on their way before it waits.
     */
    public function flush(): void
    {
        $batch = $this->queue;
        $this->queue = [];
        if ($batch === []) {
            return;
        }
        $calls = [];
        $start = microtime(true);
        foreach ($batch as $id => [$request, $options]) {
            $calls[$id] = PsrRequest::call($request, self::timeout($options));
        }
        $answers = Fetch::all($calls);
        $took = microtime(true) - $start;
        foreach ($batch as $id => [$request, $options, $promise]) {
            $answer = $answers[$id];
            if ($answer instanceof FetchException) {
                $error = new ConnectException($answer->getMessage(), $request, $answer, ['cause' => $answer->cause]);
                self::stats($options, $request, null, $took, $error);
                $promise->reject($error);
                continue;
            }
            try {
                $response = self::response($answer, $options);
                if (isset($options['on_headers'])) {
                    ($options['on_headers'])($response);
                }
            } catch (\Throwable $e) {
                $error = new RequestException('An error was encountered during the on_headers event', $request, $response ?? null, $e);
                self::stats($options, $request, $response ?? null, $took, $error);
                $promise->reject($error);
                continue;
            }
            self::stats($options, $request, $response, $took, null);
            $promise->resolve($response);
        }
    }

    /**
     * Why the request goes to Guzzle's own handler, or null.
     *
     * @param array<string, mixed> $options
     */
    private static function unsupported(RequestInterface $request, array $options): ?string
    {
        foreach (self::OWN_OPTIONS as $name) {
            if (!empty($options[$name])) {
                return "the $name option";
            }
        }
        if (($options['verify'] ?? true) !== true) {
            return 'verify';
        }
        if (in_array(strtolower((string)($options['auth'][2] ?? 'basic')), ['digest', 'ntlm'], true)) {
            return 'Digest or NTLM auth';
        }
        return PsrRequest::unsupported($request);
    }

    /**
     * Seconds the call may take.
     *
     * @param array<string, mixed> $options
     */
    private static function timeout(array $options): ?float
    {
        $total = (float)($options['timeout'] ?? 0);
        if ($total <= 0) {
            $total = (float)($options['connect_timeout'] ?? 0) + (float)($options['read_timeout'] ?? 0);
        }
        return $total > 0 ? $total : null;
    }

    /**
     * The answer as a Guzzle response, its body in the sink when one is set.
     *
     * @param array<string, mixed> $options
     */
    private static function response(Response $answer, array $options): ResponseInterface
    {
        $headers = ResponseHead::fields($answer);
        $body = $answer->body;
        $encoding = strtolower($headers['Content-Encoding'][0] ?? '');
        if (($options['decode_content'] ?? true) !== false && in_array($encoding, ['gzip', 'deflate'], true)) {
            // The translator asked for an encoding itself, so the aggregator left the body as it came.
            $decoded = $encoding === 'gzip' ? @gzdecode($body) : @gzuncompress($body);
            if ($decoded !== false) {
                $body = $decoded;
                $headers['X-Encoded-Content-Encoding'] = $headers['Content-Encoding'];
                unset($headers['Content-Encoding'], $headers['Content-Length']);
            }
        }
        $stream = Psr7\Utils::streamFor($body);
        if (isset($options['sink'])) {
            $sink = is_string($options['sink']) ? new Psr7\LazyOpenStream($options['sink'], 'w+') : Psr7\Utils::streamFor($options['sink']);
            Psr7\Utils::copyToStream($stream, $sink);
            $sink->seek(0);
            $stream = $sink;
        }
        return new Psr7\Response($answer->status, $headers, $stream, '1.1', ResponseHead::reason($answer->status) ?: null);
    }

    /** @param array<string, mixed> $options */
    private static function stats(array $options, RequestInterface $request, ?ResponseInterface $response, float $took, ?\Throwable $error): void
    {
        if (isset($options['on_stats'])) {
            ($options['on_stats'])(new TransferStats($request, $response, $took, $error, []));
        }
    }
}

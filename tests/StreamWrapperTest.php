<?php

declare(strict_types=1);

namespace Aggregator\Tests;

use Aggregator\Testing\Answer;
use Aggregator\Testing\Translator;
use Aggregator\Testing\TranslatorTestCase;

/**
 * The http:// and https:// streams of translators written for PHP's own
 * wrapper (SPEC §17), run by the aggregator: in worker mode they go through
 * the aggregator's wrapper (src/Http/StreamWrapper.php), in exec mode
 * through PHP's, and a translator sees the same values and warnings in both.
 */
final class StreamWrapperTest extends TranslatorTestCase
{
    private const FIXTURES = ROOT . '/tests/fixtures/http';

    use HttpFixtures {
        setUpBeforeClass as startSupplier;
        tearDownAfterClass as stopSupplier;
    }

    private static ?ScriptServer $tls = null;

    public static function setUpBeforeClass(): void
    {
        self::startSupplier();
        self::$tls = ScriptServer::tls();
    }

    public static function tearDownAfterClass(): void
    {
        self::stopSupplier();
        self::$tls?->stop();
        self::$tls = null;
    }

    /**
     * The parity test: every scenario of StreamScenarios.php (values,
     * warnings with their text and line, exceptions) is the same in worker
     * mode as in exec mode, and so are the warnings PHP reports itself
     * when the translator has no error handler.
     */
    public function testWorkerModeGivesWhatPhpsOwnWrapperGives(): void
    {
        $input = ['tls' => self::$tls?->url];
        [$worker, $exec] = [self::runScenarios(self::scenarioWorker(), 'Stream', $input), self::runScenarios(self::scenarioExec(), 'Stream', $input)];
        self::assertSameScenarios(self::byScenario($exec), self::byScenario($worker), "PHP's own wrapper");
        self::assertSame(self::warningLines($exec), self::warningLines($worker), 'the warnings PHP reported itself');
        self::assertNotEmpty(self::warningLines($worker));
        $items = self::byScenario($worker);
        // A sample of what both gave, so that agreeing on nothing cannot pass.
        self::assertSame("first line\nsecond line\n", $items['get']['value']);
        self::assertFalse($items['status 404']['value']);
        self::assertStringEndsWith('/404): Failed to open stream: HTTP request failed! HTTP/1.1 404 Not Found' . "\r\n", $items['status 404']['warnings'][0]);
        self::assertSame(['POST', '{"code":"3310"}', 'q=1', 'application/json', 'k1'], $items['post']['value']);
        self::assertStringContainsString('Failed to open stream: Connection refused', $items['refused']['warnings'][0]);
        self::assertCount(2, $items['dns']['warnings'], 'getaddrinfo, then Failed to open stream');
        self::assertStringEndsWith('Failed to open stream: HTTP request failed!', $items['timeout']['warnings'][0]);
        self::assertStringContainsString('certificate verify failed', $items['https, self-signed']['warnings'][0]);
        self::assertSame('tls', $items['https, verify_peer false']['value']);
    }

    /** A handlers file that reads a URL while it loads (no job yet) gets PHP's own wrapper; its jobs get the aggregator's. */
    public function testOutsideAJobPhpsWrapperMakesTheCall(): void
    {
        $answer = Translator::worker(self::FIXTURES . '/wrapper_handlers.php')->withEnv(['SUPPLIER_URL' => self::url()])
            ->items(['case' => 'at load', 'url' => self::url()]);
        self::assertAnswered($answer);
        self::assertSame(['load' => null, 'job' => 'aggregator-fetch/1'], $answer->items[0], "PHP's wrapper sends no User-Agent, the aggregator its own");
    }

    /** PHP sets no $http_response_header for a user wrapper (checked here); last_response_headers() has its lines. */
    public function testHttpResponseHeaderIsNotSetInAJob(): void
    {
        $answer = Translator::worker(self::FIXTURES . '/wrapper_handlers.php')->items(['case' => 'http_response_header', 'url' => self::url()]);
        self::assertAnswered($answer);
        self::assertSame("first line\nsecond line\n", $answer->items[0]['body']);
        self::assertFalse($answer->items[0]['set']);
        self::assertSame('HTTP/1.1 200 OK', $answer->items[0]['kit'][0]);
        self::assertContains('X-Supplier: demo', $answer->items[0]['kit']);
    }

    /** A job's last_response_headers() are its own: the next job on the same worker (and Fiber) starts with none. */
    public function testLastResponseHeadersAreTheJobsOwn(): void
    {
        $worker = WorkerProcess::worker([self::FIXTURES . '/wrapper_handlers.php']);
        $worker->handshake();
        $first = $worker->job(2, (string)json_encode(['case' => 'http_response_header', 'url' => self::url()]))->json();
        self::assertSame('HTTP/1.1 200 OK', $first['items'][0]['kit'][0]);
        self::assertSame(['items' => [['kit' => null]]], $worker->job(2, (string)json_encode(['case' => 'last only']))->json());
        $worker->closeInput();
        self::assertSame(0, $worker->wait());
    }

    /**
     * get_headers() takes its answer from PHP's own wrapper only: in a job
     * it fails with a warning naming \Aggregator\get_headers(), which gives
     * what PHP's gives.
     */
    public function testGetHeadersInAJob(): void
    {
        $answer = Translator::worker(self::FIXTURES . '/wrapper_handlers.php')->items(['case' => 'get_headers', 'url' => self::url()]);
        self::assertAnswered($answer);
        $got = $answer->items[0];
        self::assertFalse($got['plain']);
        self::assertStringContainsString('/ok): Failed to open stream: get_headers() cannot run through the aggregator\'s http:// wrapper', (string)$got['warning']);
        self::assertStringContainsString('call \\Aggregator\\get_headers() instead', (string)$got['warning']);
        self::assertSame('HTTP/1.1 200 OK', $got['kit'][0]);
        self::assertContains('X-Supplier: demo', $got['kit']);
        self::assertSame('HTTP/1.1 200 OK', $got['kit assoc'][0]);
        self::assertSame(['a=1; Path=/; Expires=Wed, 21 Oct 2026 07:28:00 GMT', 'b=2; Path=/'], $got['kit assoc']['Set-Cookie']);
        $native = get_headers(self::url() . '/cookies', true);
        self::assertSame($native['Set-Cookie'], $got['kit assoc']['Set-Cookie'], "PHP's own get_headers()");
    }

    /**
     * The call a stream makes is a fetch() call of the job, with the
     * context's headers and timeout; cancelled while it waits, the job's
     * finally blocks run and no "stream_open call failed" warning appears.
     */
    public function testAStreamWaitsAsAFetchCallAndCanBeCancelled(): void
    {
        $worker = WorkerProcess::worker([self::FIXTURES . '/wrapper_handlers.php']);
        $worker->handshake();
        $id = $worker->startJob(2, (string)json_encode(['case' => 'wait', 'url' => 'http://supplier.example/parts?code=3310']));
        $call = $worker->fetchCall();
        self::assertSame($id, $call['id']);
        self::assertSame('GET', $call['request']['method']);
        self::assertSame('http://supplier.example/parts?code=3310', $call['request']['url']);
        self::assertSame(2.5, $call['request']['timeout']);
        self::assertContains(['X-Key', 'k'], $call['request']['headers']);
        $worker->cancel($id);
        $result = $worker->result();
        self::assertSame('Aggregator\\Cancelled', $result->error()['class'], $result->payload);
        $worker->closeInput();
        self::assertSame(0, $worker->wait());
        self::assertStringContainsString('the finally block ran', $worker->stderr());
        self::assertStringNotContainsString('stream_open', $worker->stderr());
    }

    /** In worker mode the calls are the aggregator's: its log names them, its client sends them. */
    public function testWorkerModeCallsGoThroughTheAggregator(): void
    {
        $answer = self::runScenarios(self::scenarioWorker(), 'Stream', ['only' => ['status 404', 'header string, user_agent']]);
        self::assertStringContainsString('fetch answered with an error status', $answer->log);
        self::assertStringContainsString('"url": "' . self::url() . '/404"', $answer->log);
        $exec = self::runScenarios(self::scenarioExec(), 'Stream', ['only' => ['status 404']]);
        self::assertStringNotContainsString('fetch answered', $exec->log, 'exec mode: PHP makes the call');
    }

    /** aggregator.worker.http-wrapper=false leaves the streams to PHP's own wrapper. */
    public function testTheWrapperCanBeTurnedOff(): void
    {
        $answer = self::runScenarios(self::scenarioWorker()->withConfig(['aggregator.worker.http-wrapper' => 'false']), 'Stream',
            ['only' => ['status 404', 'response headers']]);
        self::assertStringNotContainsString('fetch answered', $answer->log);
        self::assertSame('HTTP/1.1 200 OK', $answer->items[1]['value'][1], '$http_response_header is PHP\'s again');
    }

    /** @return list<string> the warnings PHP displayed and logged on stderr */
    private static function warningLines(Answer $answer): array
    {
        return array_values(array_filter($answer->stderr, static fn (string $line): bool => str_contains($line, 'Warning: ')));
    }

}

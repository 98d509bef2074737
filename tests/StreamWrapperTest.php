<?php

declare(strict_types=1);

namespace Aggregator\Tests;

use Aggregator\Testing\Answer;
use Aggregator\Testing\PhpServer;
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

    private static ?PhpServer $supplier = null;

    public static function setUpBeforeClass(): void
    {
        self::$supplier = PhpServer::start(self::FIXTURES . '/supplier.php');
    }

    public static function tearDownAfterClass(): void
    {
        self::$supplier?->stop();
        self::$supplier = null;
    }

    /**
     * The parity test: every scenario of StreamScenarios.php (values,
     * warnings with their text and line, exceptions) is the same in worker
     * mode as in exec mode, and so are the warnings PHP reports itself
     * when the translator has no error handler.
     */
    public function testWorkerModeGivesWhatPhpsOwnWrapperGives(): void
    {
        $worker = self::scenarios(self::worker());
        $exec = self::scenarios(self::exec());
        self::assertSame(array_keys($exec->items), array_keys($worker->items), 'the same scenarios ran');
        foreach ($exec->items as $name => $item) {
            self::assertSame($item, $worker->items[$name], "scenario '$name': worker mode differs from PHP's own wrapper");
        }
        self::assertSame(self::warningLines($exec), self::warningLines($worker), 'the warnings PHP reported itself');
        self::assertNotEmpty(self::warningLines($worker));
        // A sample of what both gave, so that agreeing on nothing cannot pass.
        self::assertSame("first line\nsecond line\n", $worker->items['get']['value']);
        self::assertFalse($worker->items['status 404']['value']);
        self::assertStringEndsWith('/404): Failed to open stream: HTTP request failed! HTTP/1.1 404 Not Found' . "\r\n", $worker->items['status 404']['warnings'][0]);
        self::assertSame(['POST', '{"code":"3310"}', 'q=1', 'application/json', 'k1'], $worker->items['post']['value']);
        self::assertStringContainsString('Failed to open stream: Connection refused', $worker->items['refused']['warnings'][0]);
        self::assertCount(2, $worker->items['dns']['warnings'], 'getaddrinfo, then Failed to open stream');
        self::assertStringEndsWith('Failed to open stream: HTTP request failed!', $worker->items['timeout']['warnings'][0]);
    }

    /** In worker mode the calls are the aggregator's: its log names them, its client sends them. */
    public function testWorkerModeCallsGoThroughTheAggregator(): void
    {
        $answer = self::worker()->items(['url' => self::url(), 'refused' => self::refused(), 'only' => ['status 404', 'header string, user_agent']]);
        self::assertAnswered($answer);
        self::assertStringContainsString('fetch answered with an error status', $answer->log);
        self::assertStringContainsString('"url": "' . self::url() . '/404"', $answer->log);
        $exec = self::exec()->items(['url' => self::url(), 'refused' => self::refused(), 'only' => ['status 404']]);
        self::assertStringNotContainsString('fetch answered', $exec->log, 'exec mode: PHP makes the call');
    }

    /** aggregator.worker.http-wrapper=false leaves the streams to PHP's own wrapper. */
    public function testTheWrapperCanBeTurnedOff(): void
    {
        $answer = self::worker()->withConfig(['aggregator.worker.http-wrapper' => 'false'])
            ->items(['url' => self::url(), 'refused' => self::refused(), 'only' => ['status 404', 'response headers']]);
        self::assertAnswered($answer);
        self::assertStringNotContainsString('fetch answered', $answer->log);
        self::assertSame('HTTP/1.1 200 OK', $answer->items[1]['value'][1], '$http_response_header is PHP\'s again');
    }

    private static function scenarios(Translator $translator): Answer
    {
        $answer = $translator->items(['url' => self::url(), 'refused' => self::refused()]);
        self::assertAnswered($answer);
        $items = [];
        foreach ($answer->items as $item) {
            $items[(string)$item['scenario']] = $item;
        }
        return new Answer($answer->kind, $answer->mode, $answer->code, $answer->error, $answer->message, $items,
            $answer->suppliers, $answer->info, $answer->output, $answer->stderr, $answer->exception, $answer->durationMs, $answer->log);
    }

    /** @return list<string> the warnings PHP displayed and logged on stderr */
    private static function warningLines(Answer $answer): array
    {
        return array_values(array_filter($answer->stderr, static fn (string $line): bool => str_contains($line, 'Warning: ')));
    }

    private static function worker(): Translator
    {
        return Translator::worker(self::FIXTURES . '/stream_handlers.php')->withConfig(['aggregator.timeout.script' => 30]);
    }

    private static function exec(): Translator
    {
        return Translator::exec(self::FIXTURES . '/stream_items.php', self::FIXTURES . '/stream_items.php')
            ->withConfig(['aggregator.timeout.script' => 30]);
    }

    /** A URL nothing listens on: the same in both modes, so that their warnings can be compared. */
    private static function refused(): string
    {
        static $url = null;
        if ($url === null) {
            $socket = stream_socket_server('tcp://127.0.0.1:0');
            $url = 'http://' . stream_socket_get_name($socket, false);
            fclose($socket);
        }
        return $url;
    }

    private static function url(): string
    {
        return (string)self::$supplier?->url;
    }
}

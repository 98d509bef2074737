<?php

declare(strict_types=1);

namespace Aggregator\Tests;

use Aggregator\Http\FetchOptions;
use Aggregator\Testing\PhpServer;
use Aggregator\Testing\Translator;
use Aggregator\Testing\TranslatorTestCase;

/**
 * \Aggregator\Http\GuzzleHandler with Debian's Guzzle 7: a translator's
 * Guzzle calls give the same responses and exceptions through the
 * aggregator (worker mode) as through Guzzle's own handler (exec mode),
 * and concurrent ones are in flight at once.
 */
final class GuzzleHandlerTest extends TranslatorTestCase
{
    private const FIXTURES = ROOT . '/tests/fixtures/http';

    /** Milliseconds the supplier takes for each call of the pool. */
    private const SLEEP_MS = 300;

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

    public function testWorkerModeAnswersAsGuzzlesOwnHandler(): void
    {
        $skip = ['pool']; // timing: testConcurrentRequestsAreInFlightAtOnce
        if (!FetchOptions::has('redirects')) {
            // Until fetch() takes `redirects`, the aggregator follows redirects before Guzzle's middleware sees them.
            $skip[] = 'redirect history';
        }
        $worker = self::scenarios(Translator::worker(self::FIXTURES . '/guzzle_handlers.php'), $skip);
        $exec = self::scenarios(Translator::exec(self::FIXTURES . '/guzzle_items.php', self::FIXTURES . '/guzzle_items.php'), $skip);
        self::assertSame(array_keys($exec), array_keys($worker));
        foreach ($exec as $name => $item) {
            self::assertSame($item, $worker[$name], "scenario '$name': worker mode differs from Guzzle's own handler");
        }
        self::assertSame([200, "first line\nsecond line\n", 'demo'], $worker['get']['value']);
        self::assertSame('GuzzleHttp\Exception\ClientException', $worker['404 with http_errors']['exception']);
        self::assertSame('GuzzleHttp\Exception\ConnectException', $worker['refused']['exception']);
        self::assertSame(['fulfilled 200', 'rejected GuzzleHttp\Exception\ConnectException', 'rejected GuzzleHttp\Exception\ClientException'],
            $worker['settle with a failure']['value']);
    }

    /**
     * A Pool of 8 requests to a supplier that takes 300 ms each
     * (delay_server.php, which serves any number at once): the handler
     * sends them as one batch, so they overlap at the supplier and take
     * about 300 ms together, not 8 x 300 ms (measured: 1, 8 and 32 calls
     * 0.305, 0.307, 0.312 s).
     */
    public function testConcurrentRequestsAreInFlightAtOnce(): void
    {
        $count = 8;
        $supplier = ScriptServer::delay();
        $answer = Translator::worker(self::FIXTURES . '/guzzle_handlers.php')
            ->items(['url' => $supplier->url, 'refused' => self::refused(), 'only' => ['pool'], 'count' => $count]);
        self::assertAnswered($answer);
        ['took' => $took, 'spans' => $spans] = $answer->items[0]['value'];
        self::assertCount($count, $spans);
        $lastStart = max(array_column($spans, 'start'));
        $firstEnd = min(array_column($spans, 'end'));
        self::assertLessThan($firstEnd, $lastStart, 'every call started before the first ended: all were in flight at once');
        self::assertLessThan(2 * self::SLEEP_MS / 1000, $took, "$count calls of " . self::SLEEP_MS . " ms took {$took} s, one after another would take " . $count * self::SLEEP_MS / 1000);
        self::assertGreaterThanOrEqual(self::SLEEP_MS / 1000, $took);
    }

    /** Outside a worker's job (here: PHPUnit itself) Guzzle's own handler makes the call. */
    public function testOutsideAJobGuzzlesOwnHandlerSends(): void
    {
        require_once '/usr/share/php/GuzzleHttp/autoload.php';
        $client = new \GuzzleHttp\Client(['handler' => \GuzzleHttp\HandlerStack::create(new \Aggregator\Http\GuzzleHandler())]);
        $response = $client->get(self::url() . '/ok');
        self::assertSame('demo', $response->getHeaderLine('X-Supplier'));
    }

    /**
     * @param list<string> $skip
     * @return array<string, array<string, mixed>> the scenarios' items by name
     */
    private static function scenarios(Translator $translator, array $skip): array
    {
        $answer = $translator->withConfig(['aggregator.timeout.script' => 20])->items(['url' => self::url(), 'refused' => self::refused()]);
        self::assertAnswered($answer);
        $items = [];
        foreach ($answer->items as $item) {
            if (!in_array($item['scenario'], $skip, true)) {
                $items[(string)$item['scenario']] = $item;
            }
        }
        return $items;
    }

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

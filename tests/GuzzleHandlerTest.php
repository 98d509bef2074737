<?php

declare(strict_types=1);

namespace Aggregator\Tests;

use Aggregator\Testing\TranslatorTestCase;

/**
 * \Aggregator\Http\GuzzleHandler with Debian's Guzzle 7: a translator's
 * Guzzle calls give the same responses and exceptions through the
 * aggregator (worker mode) as through Guzzle's own handler (exec mode),
 * and concurrent ones are in flight at once.
 */
final class GuzzleHandlerTest extends TranslatorTestCase
{
    use HttpFixtures;

    /** Milliseconds the supplier takes for each call of the pool. */
    private const SLEEP_MS = 300;

    public function testWorkerModeAnswersAsGuzzlesOwnHandler(): void
    {
        $skip = ['pool']; // timing: testConcurrentRequestsAreInFlightAtOnce
        $worker = array_diff_key(self::scenarioItems(self::scenarioWorker(), 'Guzzle'), array_flip($skip));
        $exec = array_diff_key(self::scenarioItems(self::scenarioExec(), 'Guzzle'), array_flip($skip));
        self::assertSameScenarios($exec, $worker, "Guzzle's own handler");
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
        $answer = self::runScenarios(self::scenarioWorker(), 'Guzzle', ['url' => $supplier->url, 'only' => ['pool'], 'count' => $count]);
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
}

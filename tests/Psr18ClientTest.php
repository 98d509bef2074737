<?php

declare(strict_types=1);

namespace Aggregator\Tests;

use Aggregator\Testing\TranslatorTestCase;

/**
 * \Aggregator\Http\Psr18Client with Debian's psr/http-client and PSR-17
 * factories (Nyholm's, Guzzle's): the same responses and exceptions in
 * worker mode (the aggregator performs the calls) as in exec mode (PHP does).
 */
final class Psr18ClientTest extends TranslatorTestCase
{
    use HttpFixtures;

    public function testWorkerModeAnswersAsExecMode(): void
    {
        $worker = self::scenarioItems(self::scenarioWorker(), 'Psr18');
        $exec = self::scenarioItems(self::scenarioExec(), 'Psr18');
        self::assertSameScenarios($exec, $worker, 'exec mode');
        self::assertSame([200, 'OK', "first line\nsecond line\n", 'demo', 'Nyholm\Psr7\Response'], $worker['get']['value']);
        self::assertSame([404, 'Not Found', 'status 404', '', 'Nyholm\Psr7\Response'], $worker['404 is a response']['value']);
        self::assertSame(['POST', '{"code":"3310"}', 'application/json', 'k1'], $worker['post json']['value']);
        self::assertSame(['a=1; Path=/; Expires=Wed, 21 Oct 2026 07:28:00 GMT', 'b=2; Path=/'], $worker['set-cookie lines']['value']);
        self::assertSame('GuzzleHttp\Psr7\Response', $worker['guzzle factories']['value'][4]);
        self::assertSame(['exception' => 'Aggregator\Http\NetworkException', 'network' => true, 'request' => self::refused() . '/x'],
            array_diff_key($worker['refused'], ['scenario' => 0]));
        self::assertSame('Aggregator\Http\RequestException', $worker['another scheme']['exception']);
        self::assertFalse($worker['another scheme']['network']);
        self::assertSame('Aggregator\Http\RequestException', $worker['a method fetch() does not send']['exception']);
    }

    /** In worker mode the calls are the aggregator's: its log names them. */
    public function testWorkerModeCallsGoThroughTheAggregator(): void
    {
        $answer = self::runScenarios(self::scenarioWorker(), 'Psr18', ['only' => ['404 is a response']]);
        self::assertStringContainsString('fetch answered with an error status', $answer->log);
    }
}

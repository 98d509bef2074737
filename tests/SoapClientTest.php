<?php

declare(strict_types=1);

namespace Aggregator\Tests;

use Aggregator\Testing\TranslatorTestCase;

/**
 * \Aggregator\SoapClient against a real SOAP service (PHP's SoapServer,
 * tests/fixtures/http/SoapService.php): in worker mode the aggregator
 * performs its calls and WSDL download, in exec mode PHP's own transport
 * does, and a translator gets the same answers and faults in both.
 */
final class SoapClientTest extends TranslatorTestCase
{
    use HttpFixtures;

    public function testWorkerModeAnswersAsPhpsSoapClient(): void
    {
        $worker = self::scenarioItems(self::scenarioWorker(), 'Soap');
        $exec = self::scenarioItems(self::scenarioExec(), 'Soap');
        self::assertSameScenarios($exec, $worker, "PHP's SoapClient");
        // What both gave, so that agreeing on nothing cannot pass.
        self::assertSame(['code' => '3310', 'brand' => 'ctr', 'price' => 10.5, 'stock' => 3], $worker['search']['value']['parts']['part'][0]);
        self::assertSame(['class' => 'SoapFault', 'faultcode' => 'SOAP-ENV:Client', 'message' => 'key bad may not search'], $worker['fault']['fault']);
        self::assertSame(['class' => 'SoapFault', 'faultcode' => 'HTTP', 'message' => 'Not Found'], $worker['HTTP 404']['fault']);
        self::assertSame($worker['HTTP 404']['fault'], $worker['HTTP 404, exceptions false']['value']);
        self::assertSame('Could not connect to host', $worker['refused']['fault']['message']);
        self::assertSame('"urn:parts#Whoami"', $worker['headers sent']['value']['soapaction']);
        self::assertSame('application/soap+xml; charset=utf-8; action="urn:parts#Whoami"', $worker['SOAP 1.2']['value']['content-type']);
        self::assertSame(['authorization' => 'Basic ' . base64_encode('user:secret'), 'content-type' => 'text/xml; charset=utf-8',
            'soapaction' => '"urn:parts#Whoami"', 'user-agent' => 'shop/2', 'x-custom' => '1'], $worker['login, stream_context header, user_agent']['value']);
        self::assertSame('gzip', $worker['gzip request']['value'][0]['content-encoding']);
        self::assertSame('s-u1', $worker['cookies']['value'][1]);
        self::assertStringContainsString('<ns1:text>3310</ns1:text>', $worker['trace']['value'][0]);
        self::assertSame('HTTP/1.1 200 OK', $worker['trace']['value'][3]);
    }

    /** In worker mode the WSDL and the calls are the aggregator's: its log lists them. */
    public function testWorkerModeCallsGoThroughTheAggregator(): void
    {
        $answer = self::runScenarios(self::scenarioWorker()->withConfig(['logging.level.me.blzr.aggregator' => 'DEBUG']), 'Soap', ['only' => ['search']]);
        self::assertMatchesRegularExpression('~fetch answered.*"method": "GET", "url": "' . preg_quote(self::url(), '~') . '/soap\?wsdl"~', $answer->log);
        self::assertMatchesRegularExpression('~fetch answered.*"method": "POST", "url": "' . preg_quote(self::url(), '~') . '/soap"~', $answer->log);
    }

    /** Outside a worker's job (here: PHPUnit itself) PHP's own transport makes the call. */
    public function testOutsideAJobItIsPhpsSoapClient(): void
    {
        $client = new \Aggregator\SoapClient(self::url() . '/soap?wsdl', ['cache_wsdl' => WSDL_CACHE_NONE, 'trace' => true]);
        $answer = $client->GetSearch(['key' => 'k', 'text' => '3310']);
        self::assertSame('mann', $answer->parts->part[1]->brand);
        self::assertStringContainsString('User-Agent: PHP-SOAP/' . PHP_VERSION, (string)$client->__getLastRequestHeaders());
    }
}

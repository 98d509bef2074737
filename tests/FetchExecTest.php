<?php

declare(strict_types=1);

namespace Aggregator\Tests;

use Aggregator\FetchException;
use Aggregator\Response;
use Aggregator\Testing\PhpServer;
use PHPUnit\Framework\TestCase;

use function Aggregator\fetch;

/**
 * fetch() outside a worker (exec mode, `aggregator call` in exec mode, a
 * translator's own test): PHP makes the call itself, against real servers
 * (php -S, tests/fixtures/supplier.php). Its options behave as the
 * aggregator makes them in worker mode.
 */
final class FetchExecTest extends TestCase
{
    use AssertThrows;

    private static ?PhpServer $a = null;

    public static function setUpBeforeClass(): void
    {
        self::$a = PhpServer::start(ROOT . '/tests/fixtures/supplier.php');
    }

    public static function tearDownAfterClass(): void
    {
        self::$a?->stop();
    }

    /** @testdox query, json, form and auth reach the supplier encoded */
    public function testOptionsReachTheSupplier(): void
    {
        $seen = self::echoed(fetch(self::a('/search?key=k'), ['query' => ['code' => 'KYB 334', 'brand' => 'Ауди']]));
        self::assertSame('/search?key=k&code=KYB%20334&brand=%D0%90%D1%83%D0%B4%D0%B8', $seen['uri']);

        $seen = self::echoed(fetch(self::a('/order'), ['method' => 'POST', 'json' => ['code' => '3310', 'name' => 'Фильтр']]));
        self::assertSame(['POST', '{"code":"3310","name":"Фильтр"}', 'application/json'], [$seen['method'], $seen['body'], $seen['headers']['content-type']]);

        $seen = self::echoed(fetch(self::a('/order'), ['method' => 'POST', 'form' => ['code' => 'KYB 334', 'qty' => 2]]));
        self::assertSame(['code=KYB+334&qty=2', 'application/x-www-form-urlencoded'], [$seen['body'], $seen['headers']['content-type']]);

        $seen = self::echoed(fetch(self::a('/private'), ['auth' => ['shop', 'secret']]));
        self::assertSame('Basic ' . base64_encode('shop:secret'), $seen['headers']['authorization']);
    }

    /** @testdox a URL with spaces and non-ASCII is sent encoded, not as a broken request line */
    public function testAUrlWithSpacesIsSentEncoded(): void
    {
        $response = fetch(self::a('/parts/KYB 334?name=oil filter&brand=Ауди'));
        self::assertSame(200, $response->status);
        self::assertSame('/parts/KYB%20334?name=oil%20filter&brand=%D0%90%D1%83%D0%B4%D0%B8', self::echoed($response)['uri']);
    }

    private static function a(string $path): string
    {
        return self::$a->url . $path;
    }

    /** @return array{method: string, uri: string, headers: array<string, string>, body: string} what the supplier saw */
    private static function echoed(Response $response): array
    {
        self::assertSame(200, $response->status, $response->body);
        return $response->json();
    }
}

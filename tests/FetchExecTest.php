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
 * (php -S, tests/fixtures/supplier.php). Its options and redirects behave
 * as the aggregator makes them in worker mode.
 */
final class FetchExecTest extends TestCase
{
    use AssertThrows;

    private static ?PhpServer $a = null;

    /** Another origin (another port) for cross-host redirects. */
    private static ?PhpServer $b = null;

    public static function setUpBeforeClass(): void
    {
        self::$a = PhpServer::start(ROOT . '/tests/fixtures/supplier.php');
        self::$b = PhpServer::start(ROOT . '/tests/fixtures/supplier.php');
    }

    public static function tearDownAfterClass(): void
    {
        self::$a?->stop();
        self::$b?->stop();
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

    /** @testdox redirects: 20 by default, 0 gives the 3xx itself, more than the call allows is FetchException cause redirects */
    public function testHowManyRedirects(): void
    {
        self::assertSame('/chain?n=0', self::echoed(fetch(self::a('/chain?n=3')))['uri']);
        self::assertSame('/chain?n=0', self::echoed(fetch(self::a('/chain?n=2'), ['redirects' => 2]))['uri']);

        $none = fetch(self::a('/chain?n=1'), ['redirects' => 0]);
        self::assertSame([302, '/chain?n=0'], [$none->status, $none->header('Location')]);

        $e = self::assertThrows(FetchException::class, static fn () => fetch(self::a('/chain?n=3'), ['redirects' => 2]));
        self::assertSame('redirects', $e->cause);
        self::assertSame('GET ' . self::a('/chain?n=3') . ': redirects: more than 2 redirects', $e->getMessage());
        $e = self::assertThrows(FetchException::class, static fn () => fetch(self::a('/chain?n=21')));
        self::assertStringEndsWith('more than 20 redirects', $e->getMessage());
    }

    /** @testdox a redirect to another host carries none of the translator's headers, unless the call opts in; on the same host it does */
    public function testCrossHostRedirectsDropTheTranslatorsHeaders(): void
    {
        $options = ['headers' => ['X-Api-Key' => 'SECRET'], 'auth' => ['shop', 'pw']];
        $same = self::echoed(fetch(self::a('/redirect?to=/echo'), $options));
        self::assertSame(['SECRET', 'Basic ' . base64_encode('shop:pw')], [$same['headers']['x-api-key'] ?? null, $same['headers']['authorization'] ?? null], 'same host');

        $other = self::echoed(fetch(self::a('/redirect?to=' . urlencode(self::b('/echo'))), $options));
        self::assertSame('/echo', $other['uri']);
        self::assertArrayNotHasKey('x-api-key', $other['headers'], 'another host gets no X-Api-Key');
        self::assertArrayNotHasKey('authorization', $other['headers'], 'nor Authorization');

        $back = self::echoed(fetch(self::a('/redirect?to=' . urlencode(self::b('/redirect?to=' . urlencode(self::a('/echo'))))), $options));
        self::assertArrayNotHasKey('x-api-key', $back['headers'], 'once the chain left the host, it carries none, even back on it');

        $opted = self::echoed(fetch(self::a('/redirect?to=' . urlencode(self::b('/echo'))), $options + ['redirect_headers' => true]));
        self::assertSame('SECRET', $opted['headers']['x-api-key'] ?? null, 'opted in');
    }

    /** @testdox 301/302/303 turn a POST into a GET without its body; 307/308 keep both */
    public function testTheMethodAndBodyOnARedirect(): void
    {
        $options = ['method' => 'POST', 'json' => ['code' => '3310'], 'headers' => ['X-Api-Key' => 'k']];
        $after303 = self::echoed(fetch(self::a('/redirect?status=303&to=/done'), $options));
        self::assertSame(['GET', ''], [$after303['method'], $after303['body']]);
        self::assertArrayNotHasKey('content-type', $after303['headers'], 'the body\'s headers go with it');
        self::assertSame('k', $after303['headers']['x-api-key'] ?? null);

        $after307 = self::echoed(fetch(self::a('/redirect?status=307&to=/done'), $options));
        self::assertSame(['POST', '{"code":"3310"}', 'application/json'], [$after307['method'], $after307['body'], $after307['headers']['content-type'] ?? null]);

        $head = fetch(self::a('/redirect?status=302&to=/done'), ['method' => 'HEAD']);
        self::assertSame([200, ''], [$head->status, $head->body], 'HEAD stays HEAD');
    }

    /** @testdox a redirect to a link-local or metadata address is refused (cause blocked_address), one to another scheme too (cause scheme) */
    public function testRefusedRedirects(): void
    {
        $refused = ['http://169.254.169.254/latest/meta-data/' => '169.254.169.254', 'http://[fd00:ec2::254]/' => '[fd00:ec2::254]',
            'http://[::ffff:169.254.169.254]/' => '[::ffff:169.254.169.254]', 'http://[fe80::1]:8080/' => '[fe80::1]:8080', 'http://224.0.0.1/' => '224.0.0.1'];
        foreach ($refused as $to => $address) {
            $start = microtime(true);
            $e = self::assertThrows(FetchException::class, static fn () => fetch(self::a('/redirect?to=' . urlencode($to)), ['timeout' => 5]), $to);
            self::assertSame('blocked_address', $e->cause, $to);
            self::assertStringEndsWith(": blocked_address: a redirect to $address, a link-local or metadata address, is refused", $e->getMessage());
            self::assertLessThan(2.0, microtime(true) - $start, 'refused before any connection');
        }
        $e = self::assertThrows(FetchException::class, static fn () => fetch(self::a('/redirect?to=' . urlencode('ftp://s.test/'))));
        self::assertSame('scheme', $e->cause);
        self::assertStringContainsString('only http:// and https://', $e->getMessage());
    }

    private static function a(string $path): string
    {
        return self::$a->url . $path;
    }

    private static function b(string $path): string
    {
        return self::$b->url . $path;
    }

    /** @return array{method: string, uri: string, headers: array<string, string>, body: string} what the supplier saw */
    private static function echoed(Response $response): array
    {
        self::assertSame(200, $response->status, $response->body);
        return $response->json();
    }
}

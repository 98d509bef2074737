<?php

declare(strict_types=1);

namespace Aggregator\Tests;

use Aggregator\FetchException;
use Aggregator\Http\Request;
use PHPUnit\Framework\TestCase;

/**
 * fetch()'s options as Request::from() checks and encodes them (SPEC §14):
 * what PHP cannot send fails the call with \InvalidArgumentException, and
 * every call it makes has a head the aggregator can read.
 */
final class FetchOptionsTest extends TestCase
{
    use AssertThrows;

    private const URL = 'http://s.test/search';

    /**
     * @return array<string, array{0: string, 1: array<string, mixed>, 2: string}> URL, options, what the message says
     */
    public static function poison(): array
    {
        return [
            'NaN timeout' => [self::URL, ['timeout' => NAN], 'timeout must be a number of seconds'],
            'INF timeout' => [self::URL, ['timeout' => INF], 'got INF'],
            '-INF timeout' => [self::URL, ['timeout' => -INF], 'timeout must be'],
            'huge timeout' => [self::URL, ['timeout' => 1e300], 'at most 86400'],
            'huge int timeout' => [self::URL, ['timeout' => PHP_INT_MAX], 'at most 86400'],
            'zero timeout' => [self::URL, ['timeout' => 0], 'above 0'],
            'string timeout' => [self::URL, ['timeout' => '2'], 'got string'],
            'CRLF in a header' => [self::URL, ['headers' => ['X-A' => "v\r\nX-Injected: 1"]], "header 'X-A' holds a line break"],
            'LF in a header' => [self::URL, ['headers' => ['X-A' => "v\n"]], 'a line break'],
            'NUL in a header' => [self::URL, ['headers' => ['X-A' => "v\0"]], 'a NUL byte'],
            'a control character in a header' => [self::URL, ['headers' => ['X-A' => "v\x01"]], 'control character (byte 0x01)'],
            'invalid UTF-8 in a header' => [self::URL, ['headers' => ['X-A' => "caf\xe9"]], "header 'X-A' is not valid UTF-8"],
            'a header name that is no token' => [self::URL, ['headers' => ['X A' => 'v']], 'header names must be tokens'],
            'a header that is an array' => [self::URL, ['headers' => ['X-A' => ['v']]], "header 'X-A' must be a string"],
            'headers that are a string' => [self::URL, ['headers' => 'X-A: v'], 'headers must be an array'],
            'CONNECT' => [self::URL, ['method' => 'CONNECT'], 'method "CONNECT" is not one fetch() makes'],
            'TRACE' => [self::URL, ['method' => 'trace'], 'method "trace" is not one'],
            'a made-up method' => [self::URL, ['method' => 'FOO'], 'it makes GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS'],
            'a method that is no string' => [self::URL, ['method' => 1], 'method int is not'],
            'CRLF in the URL' => ["http://s.test/a\r\nX-Injected: 1", [], 'the URL holds a line break (byte 0x0D) at offset 15'],
            'NUL in the URL' => ["http://s.test/\0", [], 'a NUL byte'],
            'a tab in the URL' => ["http://s.test/\t", [], 'a tab'],
            'a host that is none' => ['http://s test/', [], 'is not a host name'],
            'a bad port' => ['http://s.test:99999/', [], 'not a number from 1 to 65535'],
            'an unknown option' => [self::URL, ['tiemout' => 1], "unknown option 'tiemout', did you mean 'timeout'?"],
            'a list for options' => [self::URL, ['GET'], 'unknown option 0'],
            'body and json' => [self::URL, ['body' => 'x', 'json' => [1]], 'body and json are both a body'],
            'body and form' => [self::URL, ['body' => 'x', 'form' => ['a' => 1]], 'body and form are both a body'],
            'a body that is an array' => [self::URL, ['body' => ['a' => 1]], 'body must be a string or null, got array'],
            'json with NaN' => [self::URL, ['json' => ['price' => NAN]], 'the json option cannot be encoded'],
            'json with invalid UTF-8' => [self::URL, ['json' => ['name' => "caf\xe9"]], 'the json option cannot be encoded'],
            'a form that is a string' => [self::URL, ['form' => 'a=1'], 'form must be an array'],
            'auth of one string' => [self::URL, ['auth' => 'user:pw'], 'auth must be [user, password]'],
            'auth of three' => [self::URL, ['auth' => ['u', 'p', 'digest']], 'auth must be [user, password]'],
            'a user with a colon' => [self::URL, ['auth' => ['u:x', 'p']], 'cannot hold ":"'],
            'auth with a line break' => [self::URL, ['auth' => ['u', "p\r\n"]], 'cannot hold control characters'],
            'auth and an Authorization header' => [self::URL, ['auth' => ['u', 'p'], 'headers' => ['authorization' => 'Bearer t']], 'give one'],
            'a query that is a string' => [self::URL, ['query' => 'a=1'], 'query must be an array'],
            'negative redirects' => [self::URL, ['redirects' => -1], 'redirects must be how many redirects to follow, an integer from 0 (none: the 3xx is the answer), got -1'],
            'redirects as a string' => [self::URL, ['redirects' => '5'], 'got "5"'],
            'redirects as a float' => [self::URL, ['redirects' => 1.5], 'got 1.5'],
            'redirect_headers as a string' => [self::URL, ['redirect_headers' => 'yes'], 'redirect_headers must be true'],
            'not_failures as an int' => [self::URL, ['not_failures' => 404], 'not_failures must be a list of HTTP statuses'],
            'not_failures with a string' => [self::URL, ['not_failures' => ['404']], 'not_failures must be'],
            'not_failures out of range' => [self::URL, ['not_failures' => [404, 99]], 'not_failures must be'],
            'not_failures keyed' => [self::URL, ['not_failures' => ['a' => 404]], 'not_failures must be'],
        ];
    }

    /**
     * @dataProvider poison
     * @param array<string, mixed> $options
     */
    public function testWhatCannotBeSentThrowsInvalidArgumentException(string $url, array $options, string $says): void
    {
        $e = self::assertThrows(\InvalidArgumentException::class, static fn () => Request::from($url, $options));
        self::assertStringStartsWith('fetch(): ', $e->getMessage());
        self::assertStringContainsString($says, $e->getMessage());
    }

    /** @testdox a scheme other than http(s), or no host, is a FetchException (cause scheme), as before */
    public function testASchemeOtherThanHttpIsAFetchException(): void
    {
        foreach (['ftp://s.test/', 'http:/s.test/', 's.test/search', 'http://'] as $url) {
            $e = self::assertThrows(FetchException::class, static fn () => Request::from($url, []), $url);
            self::assertSame('scheme', $e->cause, $url);
        }
    }

    /** @testdox the head of a plain call is today's: method, url, headers, timeout */
    public function testTheHeadOfAPlainCall(): void
    {
        $request = Request::from(self::URL, ['method' => 'post', 'headers' => ['X-Api-Key' => 'k', 'X-N' => 5], 'body' => 'q', 'timeout' => 2]);
        self::assertSame('{"method":"POST","url":"http://s.test/search","headers":[["X-Api-Key","k"],["X-N","5"]],"timeout":2}', $request->head());
        self::assertSame('q', $request->body);
        self::assertSame('{"method":"GET","url":"http://s.test/search","headers":[],"timeout":null}', Request::from(self::URL, [])->head());
        foreach (['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as $method) {
            self::assertSame($method, Request::from(self::URL, ['method' => strtolower($method)])->method);
        }
    }

    /** @testdox a URL is encoded where RFC 3986 says it must be, and left alone elsewhere */
    public function testTheUrlIsEncodedWhereItMustBe(): void
    {
        $cases = [
            'http://s.test/parts/KYB 334?name=oil filter&q="x"' => 'http://s.test/parts/KYB%20334?name=oil%20filter&q=%22x%22',
            'http://s.test/деталь?бренд=ctr' => 'http://s.test/%D0%B4%D0%B5%D1%82%D0%B0%D0%BB%D1%8C?%D0%B1%D1%80%D0%B5%D0%BD%D0%B4=ctr',
            'http://s.test/a?sig=ab%2Fcd%3D&f[brand]=ctr&x=1,2;3' => 'http://s.test/a?sig=ab%2Fcd%3D&f[brand]=ctr&x=1,2;3',
            'http://s.test/100%?x={a}|b^c`d' => 'http://s.test/100%25?x=%7Ba%7D%7Cb%5Ec%60d',
            ' http://s.test/trimmed ' => 'http://s.test/trimmed',
            'HTTPS://S.test:8443/p#frag#ment' => 'https://S.test:8443/p#frag%23ment',
            'http://usér:pa ss@s.test/' => 'http://us%C3%A9r:pa%20ss@s.test/',
            'http://[::1]:8080/x' => 'http://[::1]:8080/x',
            'http://пример.рф/поиск' => 'http://xn--e1afmkfd.xn--p1ai/%D0%BF%D0%BE%D0%B8%D1%81%D0%BA',
        ];
        foreach ($cases as $given => $sent) {
            $request = Request::from($given, []);
            self::assertSame($sent, $request->url, $given);
            self::assertSame($sent, json_decode($request->head(), true)['url'], "the head carries it: $given");
        }
    }

    /** @testdox query: appended RFC 3986-encoded, after the URL's own query and before its fragment */
    public function testQuery(): void
    {
        $q = ['code' => 'KYB 334', 'brand' => 'Ауди', 'f' => ['a' => 1, 'b' => true], 'skip' => null];
        self::assertSame('http://s.test/search?code=KYB%20334&brand=%D0%90%D1%83%D0%B4%D0%B8&f%5Ba%5D=1&f%5Bb%5D=1', Request::from(self::URL, ['query' => $q])->url);
        self::assertSame('http://s.test/search?key=k&page=2#top', Request::from('http://s.test/search?key=k#top', ['query' => ['page' => 2]])->url);
        self::assertSame('http://s.test/search?page=2', Request::from('http://s.test/search?', ['query' => ['page' => 2]])->url);
        self::assertSame('http://s.test/search?a=1&page=2', Request::from('http://s.test/search?a=1&', ['query' => ['page' => 2]])->url);
        self::assertSame(self::URL, Request::from(self::URL, ['query' => []])->url, 'nothing to add');
    }

    /** @testdox json and form: the body and its Content-Type, unless the translator set one */
    public function testJsonAndForm(): void
    {
        $request = Request::from(self::URL, ['method' => 'POST', 'json' => ['code' => '3310', 'name' => 'Фильтр', 'price' => 1.0, 'path' => 'a/b']]);
        self::assertSame('{"code":"3310","name":"Фильтр","price":1.0,"path":"a/b"}', $request->body);
        self::assertSame([['Content-Type', 'application/json']], $request->headers);
        $request = Request::from(self::URL, ['method' => 'POST', 'json' => [], 'headers' => ['content-type' => 'application/vnd.api+json']]);
        self::assertSame('[]', $request->body);
        self::assertSame([['content-type', 'application/vnd.api+json']], $request->headers, 'the translator\'s own Content-Type wins');

        $request = Request::from(self::URL, ['method' => 'POST', 'form' => ['code' => 'KYB 334', 'qty' => 2, 'tags' => ['a', 'b']]]);
        self::assertSame('code=KYB+334&qty=2&tags%5B0%5D=a&tags%5B1%5D=b', $request->body);
        self::assertSame([['Content-Type', 'application/x-www-form-urlencoded']], $request->headers);
        self::assertSame('x', Request::from(self::URL, ['body' => 'x', 'json' => null])->body, 'a null json is no body');
    }

    /** @testdox auth: an Authorization header, HTTP Basic */
    public function testAuth(): void
    {
        $request = Request::from(self::URL, ['auth' => ['shop', 'sécret:1']]);
        self::assertSame([['Authorization', 'Basic ' . base64_encode('shop:sécret:1')]], $request->headers);
    }

    /** @testdox redirects, redirect_headers and not_failures: in the head only when the call sets them */
    public function testRedirectsAndNotFailuresInTheHead(): void
    {
        $head = static fn (array $options): array => json_decode(Request::from(self::URL, $options)->head(), true);
        self::assertSame(['method', 'url', 'headers', 'timeout'], array_keys($head(['redirect_headers' => false, 'not_failures' => []])), 'the defaults: today\'s head');
        self::assertSame(20, Request::from(self::URL, [])->maxRedirects(), 'the default, PHP\'s');
        self::assertSame(0, $head(['redirects' => 0])['redirects']);
        $all = $head(['redirects' => 3, 'redirect_headers' => true, 'not_failures' => [404, 500]]);
        self::assertSame([3, true, [404, 500]], [$all['redirects'], $all['redirect_headers'], $all['not_failures']]);
    }
}

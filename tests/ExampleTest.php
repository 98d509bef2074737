<?php

declare(strict_types=1);

namespace Aggregator\Tests;

use Aggregator\Example\PartsApiTranslator;
use Aggregator\Example\SupplierException;
use Aggregator\Frame;
use Aggregator\Handlers;
use Aggregator\JobKind;
use Aggregator\PublicError;
use Aggregator\Testing\PhpServer;
use PHPUnit\Framework\TestCase;

/**
 * The example translator (script/example/) against its fake supplier API
 * (script/example/fake_supplier.php served by php -S), called directly, through
 * the exec adapter and through worker.php.
 */
final class ExampleTest extends TestCase
{
    use AssertThrows;

    private const REQUEST = ['code' => '3310', 'brand' => 'ctr', 'apikey' => '111111', 'analog' => 1,
        'params' => ['code' => '3310', 'brand' => 'ctr', 'apikey' => '111111', 'analog' => 1]];

    /** The fake supplier shared by the tests of this class; started by the first test that needs it. */
    private static ?PhpServer $supplier = null;

    public static function tearDownAfterClass(): void
    {
        self::$supplier?->stop();
        self::$supplier = null;
    }

    /** @testdox suppliers: one element with the supplier URL, key and timeout in params; a PublicError without an apikey */
    public function testSuppliersGiveOneElementWithUrlKeyAndTimeoutNoneWithoutAnApikey(): void
    {
        $url = self::supplier()->url;
        $answer = self::translator($url)->suppliers(self::REQUEST);
        self::assertSame([[
            'class' => 'partsapi',
            'params' => ['url' => $url, 'key' => 'test-key', 'timeout' => 2.0],
            'code' => '3310',
            'brand' => 'ctr',
            'analog' => '1',
            'info' => ['supplier' => 'partsapi', 'title' => 'Parts API (example)'],
        ]], $answer['suppliers']);
        $e = self::assertThrows(PublicError::class, static fn () => self::translator($url)->suppliers(['apikey' => ''] + self::REQUEST));
        self::assertSame('Sign in to search: the request has no API key', $e->getMessage());
        $legacy = self::translator($url)->suppliers(['params' => self::REQUEST['params']]);
        self::assertSame('3310', $legacy['suppliers'][0]['code'], 'the request is read from params too');
    }

    /** @testdox items: parts become items, crosses become nested suppliers that carry info on */
    public function testItemsPartsBecomeItemsCrossesBecomeNestedSuppliers(): void
    {
        $element = self::element(self::supplier()->url);
        $answer = self::translator()->items($element);
        self::assertSame([
            ['code' => '3310', 'brand' => 'CTR', 'name' => 'Ball joint 3310', 'price' => 12.5, 'quantity' => 7, 'delivery' => 1, 'supplier' => 'partsapi'],
            ['code' => '3310', 'brand' => 'CTR', 'name' => 'Ball joint 3310 (used)', 'price' => 8.9, 'quantity' => 2, 'delivery' => 3, 'supplier' => 'partsapi'],
        ], $answer['items']);
        self::assertSame(['3310-A1', '3310-A2'], array_column($answer['suppliers'], 'code'));
        self::assertSame(['ANALOGCO', 'OTHERCO'], array_column($answer['suppliers'], 'brand'));
        $nested = $answer['suppliers'][0];
        self::assertSame('0', $nested['analog'], 'analogs are not searched for analogs');
        self::assertSame($element['params'], $nested['params']);
        self::assertSame($element['info'] + ['analogOf' => '3310 ctr'], $nested['info']);

        $second = self::translator()->items($nested);
        self::assertSame(['3310-A1', '3310-A1'], array_column($second['items'], 'code'));
        self::assertSame([], $second['suppliers'], 'no crosses when analog is "0"');
        self::assertSame(['items' => [], 'suppliers' => []], self::translator()->items(self::element(self::supplier()->url, [], 'empty')));
    }

    /** @testdox items: HTTP 500 is a SupplierException with the status, the URL and the supplier message */
    public function testItemsHttp500IsASupplierExceptionWithStatusUrlAndMessage(): void
    {
        $e = self::failure(self::element(self::supplier()->url . '/fail'));
        self::assertStringContainsString('HTTP 500 from ' . self::supplier()->url . '/fail/search?article=3310', $e->getMessage());
        self::assertStringContainsString('internal error, try again later', $e->getMessage());
        $e = self::failure(self::element(self::supplier()->url, ['key' => '']));
        self::assertStringContainsString('HTTP 401', $e->getMessage());
        self::assertStringContainsString('missing X-Api-Key', $e->getMessage());
    }

    /** @testdox items: a supplier slower than params.timeout is a SupplierException after that time */
    public function testItemsASupplierSlowerThanTheTimeoutIsASupplierException(): void
    {
        $slow = PhpServer::start(ROOT . '/script/example/fake_supplier.php'); // sleeps 3 s
        try {
            $started = microtime(true);
            $e = self::failure(self::element($slow->url . '/slow', ['timeout' => 1]));
            $elapsed = microtime(true) - $started;
            self::assertStringContainsString('GET ' . $slow->url . '/slow/search', $e->getMessage());
            self::assertStringContainsString('timeout: no answer within 1 s', $e->getMessage());
            self::assertTrue($elapsed >= 0.9 && $elapsed < 2.5, "gave up after {$elapsed}s, want about 1 s");
        } finally {
            $slow->stop();
        }
    }

    /** @testdox items: not JSON, an error answer, a refused connection and a missing URL are clear errors */
    public function testItemsNotJsonErrorAnswerRefusedConnectionAndMissingUrlAreClearErrors(): void
    {
        $url = self::supplier()->url;
        self::assertStringContainsString('answered something that is not JSON: <html>', self::failure(self::element("$url/notjson"))->getMessage());
        self::assertStringContainsString('answered an error: this article is blocked', self::failure(self::element($url, [], 'blocked'))->getMessage());
        self::assertStringContainsString('refused: connection refused', self::failure(self::element('http://127.0.0.1:1'))->getMessage());
        $e = self::assertThrows(\InvalidArgumentException::class, static fn () => self::translator()->items(['class' => 'partsapi', 'code' => 'x']));
        self::assertStringContainsString('params.url', $e->getMessage());
    }

    /** @testdox reset hook: per-job state is dropped after each job */
    public function testResetHookDropsPerJobStateAfterEachJob(): void
    {
        $translator = self::translator();
        $element = self::element(self::supplier()->url);
        $translator->items($element);
        $translator->items($element);
        self::assertSame(2, count($translator->requests()), 'without reset the state of one job reaches the next');
        $translator->reset();
        self::assertSame([], $translator->requests());
        $handlers = Handlers::load(ROOT . '/script/example/handlers.php');
        self::assertTrue($handlers->reset !== null, 'script/example/handlers.php gives a reset handler');
    }

    /** @testdox exec mode: suppliers.php and items.php answer like the handlers; a failure exits 1 with the exception */
    public function testExecModeAnswersLikeTheHandlersAndAFailureExits1(): void
    {
        $url = self::supplier()->url;
        [$code, $stdout, $stderr] = self::exec('script/example/suppliers.php', json_encode(self::REQUEST));
        self::assertSame(0, $code, "suppliers.php exit code; stderr: $stderr");
        $suppliers = json_decode($stdout, true)['suppliers'];
        self::assertSame($url, $suppliers[0]['params']['url'], 'EXAMPLE_SUPPLIER_URL is used');

        [$code, $stdout, $stderr] = self::exec('script/example/items.php', json_encode($suppliers[0]));
        self::assertSame(0, $code, "items.php exit code; stderr: $stderr");
        $expected = self::translator()->items($suppliers[0]);
        self::assertSame(json_encode($expected, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE) . "\n", $stdout);

        [$code, $stdout, $stderr] = self::exec('script/example/items.php', json_encode(self::element("$url/fail")));
        self::assertSame(1, $code);
        self::assertSame('', $stdout);
        self::assertStringContainsString('Aggregator\Example\SupplierException: partsapi: HTTP 500', $stderr);
        self::assertStringContainsString('PartsApiTranslator.php:', $stderr);
        self::assertStringContainsString('#0 ', $stderr);
    }

    /** @testdox worker mode: worker.php script/example/handlers.php answers jobs and reports a failure with file and line */
    public function testWorkerModeAnswersJobsAndReportsAFailureWithFileAndLine(): void
    {
        $url = self::supplier()->url;
        $worker = WorkerProcess::worker(['script/example/handlers.php'], null, [], ['EXAMPLE_SUPPLIER_URL' => $url]);
        $worker->handshake();
        $result = $worker->job(JobKind::Suppliers, json_encode(self::REQUEST));
        self::assertSame(Frame::CODEC_RAW, $result->flags, 'suppliers answer: ' . $result->payload);
        $element = json_decode($result->payload, true)['suppliers'][0];
        $result = $worker->job(JobKind::Items, json_encode($element));
        self::assertSame(Frame::CODEC_RAW, $result->flags, 'items answer: ' . $result->payload);
        self::assertSame(2, count(json_decode($result->payload, true)['items']));

        $element['params']['url'] = "$url/fail";
        $result = $worker->job(JobKind::Items, json_encode($element));
        self::assertSame(Frame::CODEC_JSON | Frame::ERROR, $result->flags);
        $error = json_decode($result->payload, true);
        self::assertSame(SupplierException::class, $error['class']);
        self::assertStringContainsString('HTTP 500', $error['error']);
        self::assertSame(realpath(ROOT . '/script/example/PartsApiTranslator.php'), realpath($error['file']));
        self::assertTrue(is_int($error['line']) && $error['line'] > 0, 'a line number');
        self::assertStringContainsString('PartsApiTranslator->items()', $error['trace']);

        $worker->send(new Frame(Frame::CONTROL | Frame::CODEC_JSON, '{"stop":true}'));
        self::assertSame(0, $worker->wait(), 'stderr: ' . $worker->stderr());
    }

    /**
     * The shared fake supplier, started on first use and stopped after the
     * last test of the class (a slow-endpoint test starts its own: php -S
     * serves one request at a time).
     */
    private static function supplier(): PhpServer
    {
        return self::$supplier ??= PhpServer::start(ROOT . '/script/example/fake_supplier.php');
    }

    private static function translator(?string $url = null, float $timeout = 2.0): PartsApiTranslator
    {
        return new PartsApiTranslator($url ?? self::supplier()->url, 'test-key', $timeout);
    }

    /**
     * The supplier element the suppliers handler makes, pointed at $url.
     *
     * @param array<string, mixed> $params extra params
     * @return array<string, mixed>
     */
    private static function element(string $url, array $params = [], string $code = '3310'): array
    {
        $element = self::translator($url)->suppliers(['code' => $code] + self::REQUEST)['suppliers'][0];
        $element['params'] = $params + $element['params'];
        return $element;
    }

    /**
     * The SupplierException that items() throws for $element.
     *
     * @param array<string, mixed> $element
     */
    private static function failure(array $element): SupplierException
    {
        return self::assertThrows(SupplierException::class, static fn () => self::translator()->items($element));
    }

    /**
     * Run an exec-mode script of the example with $stdin.
     *
     * @return array{0: int, 1: string, 2: string} exit code, stdout, stderr
     */
    private static function exec(string $script, string $stdin): array
    {
        $process = proc_open(
            [PHP_BINARY, '-d', 'display_errors=stderr', $script],
            [0 => ['pipe', 'r'], 1 => ['pipe', 'w'], 2 => ['pipe', 'w']],
            $pipes,
            ROOT,
            ['EXAMPLE_SUPPLIER_URL' => self::supplier()->url] + getenv(),
        );
        fwrite($pipes[0], $stdin);
        fclose($pipes[0]);
        $stdout = (string)stream_get_contents($pipes[1]);
        $stderr = (string)stream_get_contents($pipes[2]);
        fclose($pipes[1]);
        fclose($pipes[2]);
        return [proc_close($process), $stdout, $stderr];
    }
}

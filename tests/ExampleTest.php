<?php

declare(strict_types=1);

use Aggregator\Example\PartsApiTranslator;
use Aggregator\Example\SupplierException;
use Aggregator\Frame;
use Aggregator\Handlers;
use Aggregator\Tests\Assert;
use Aggregator\Tests\PhpServer;
use Aggregator\Tests\WorkerProcess;

/**
 * The example translator (script/example/) against its fake supplier API
 * (script/example/fake_supplier.php served by php -S), called directly, through
 * the exec adapter and through worker.php.
 */

require_once ROOT . '/script/example/SupplierException.php';
require_once ROOT . '/script/example/PartsApiTranslator.php';

const EXAMPLE_REQUEST = ['code' => '3310', 'brand' => 'ctr', 'apikey' => '111111', 'analog' => 1,
    'params' => ['code' => '3310', 'brand' => 'ctr', 'apikey' => '111111', 'analog' => 1]];

/** The shared fake supplier (a slow-endpoint test starts its own: php -S serves one request at a time). */
function example_supplier(): PhpServer
{
    static $server = null;
    if ($server === null) {
        $server = PhpServer::start(ROOT . '/script/example/fake_supplier.php');
        register_shutdown_function(static fn () => $server->stop());
    }
    return $server;
}

function example_translator(?string $url = null, float $timeout = 2.0): PartsApiTranslator
{
    return new PartsApiTranslator($url ?? example_supplier()->url, 'test-key', $timeout);
}

/**
 * The supplier element the suppliers handler makes, pointed at $url.
 *
 * @param array<string, mixed> $params extra params
 * @return array<string, mixed>
 */
function example_element(string $url, array $params = [], string $code = '3310'): array
{
    $element = example_translator($url)->suppliers(['code' => $code] + EXAMPLE_REQUEST)['suppliers'][0];
    $element['params'] = $params + $element['params'];
    return $element;
}

/** The SupplierException that items() throws for $element. */
function example_failure(array $element): SupplierException
{
    $e = Assert::throws(SupplierException::class, static fn () => example_translator()->items($element));
    assert($e instanceof SupplierException);
    return $e;
}

/**
 * Run an exec-mode script of the example with $stdin.
 *
 * @return array{0: int, 1: string, 2: string} exit code, stdout, stderr
 */
function example_exec(string $script, string $stdin): array
{
    $process = proc_open(
        [PHP_BINARY, '-d', 'display_errors=stderr', $script],
        [0 => ['pipe', 'r'], 1 => ['pipe', 'w'], 2 => ['pipe', 'w']],
        $pipes,
        ROOT,
        ['EXAMPLE_SUPPLIER_URL' => example_supplier()->url] + getenv(),
    );
    fwrite($pipes[0], $stdin);
    fclose($pipes[0]);
    $stdout = (string)stream_get_contents($pipes[1]);
    $stderr = (string)stream_get_contents($pipes[2]);
    fclose($pipes[1]);
    fclose($pipes[2]);
    return [proc_close($process), $stdout, $stderr];
}

return [
    'suppliers: one element with the supplier URL, key and timeout in params; none without an apikey' => function (): void {
        $url = example_supplier()->url;
        $answer = example_translator($url)->suppliers(EXAMPLE_REQUEST);
        Assert::same([[
            'class' => 'partsapi',
            'params' => ['url' => $url, 'key' => 'test-key', 'timeout' => 2.0],
            'code' => '3310',
            'brand' => 'ctr',
            'analog' => '1',
            'info' => ['supplier' => 'partsapi', 'title' => 'Parts API (example)'],
        ]], $answer['suppliers']);
        Assert::same(['suppliers' => []], example_translator($url)->suppliers(['apikey' => ''] + EXAMPLE_REQUEST));
        $legacy = example_translator($url)->suppliers(['params' => EXAMPLE_REQUEST['params']]);
        Assert::same('3310', $legacy['suppliers'][0]['code'], 'the request is read from params too');
    },
    'items: parts become items, crosses become nested suppliers that carry info on' => function (): void {
        $element = example_element(example_supplier()->url);
        $answer = example_translator()->items($element);
        Assert::same([
            ['code' => '3310', 'brand' => 'CTR', 'name' => 'Ball joint 3310', 'price' => 12.5, 'quantity' => 7, 'delivery' => 1, 'supplier' => 'partsapi'],
            ['code' => '3310', 'brand' => 'CTR', 'name' => 'Ball joint 3310 (used)', 'price' => 8.9, 'quantity' => 2, 'delivery' => 3, 'supplier' => 'partsapi'],
        ], $answer['items']);
        Assert::same(['3310-A1', '3310-A2'], array_column($answer['suppliers'], 'code'));
        Assert::same(['ANALOGCO', 'OTHERCO'], array_column($answer['suppliers'], 'brand'));
        $nested = $answer['suppliers'][0];
        Assert::same('0', $nested['analog'], 'analogs are not searched for analogs');
        Assert::same($element['params'], $nested['params']);
        Assert::same($element['info'] + ['analogOf' => '3310 ctr'], $nested['info']);

        $second = example_translator()->items($nested);
        Assert::same(['3310-A1', '3310-A1'], array_column($second['items'], 'code'));
        Assert::same([], $second['suppliers'], 'no crosses when analog is "0"');
        Assert::same(['items' => [], 'suppliers' => []], example_translator()->items(example_element(example_supplier()->url, [], 'empty')));
    },
    'items: HTTP 500 is a SupplierException with the status, the URL and the supplier message' => function (): void {
        $e = example_failure(example_element(example_supplier()->url . '/fail'));
        Assert::contains('HTTP 500 from ' . example_supplier()->url . '/fail/search?article=3310', $e->getMessage());
        Assert::contains('internal error, try again later', $e->getMessage());
        $e = example_failure(example_element(example_supplier()->url, ['key' => '']));
        Assert::contains('HTTP 401', $e->getMessage());
        Assert::contains('missing X-Api-Key', $e->getMessage());
    },
    'items: a supplier slower than params.timeout is a SupplierException after that time' => function (): void {
        $slow = PhpServer::start(ROOT . '/script/example/fake_supplier.php'); // sleeps 3 s
        try {
            $started = microtime(true);
            $e = example_failure(example_element($slow->url . '/slow', ['timeout' => 1]));
            $elapsed = microtime(true) - $started;
            Assert::contains('no answer from ' . $slow->url . '/slow/search', $e->getMessage());
            Assert::contains('within 1.0 s', $e->getMessage());
            Assert::true($elapsed >= 0.9 && $elapsed < 2.5, "gave up after {$elapsed}s, want about 1 s");
        } finally {
            $slow->stop();
        }
    },
    'items: not JSON, an error answer, a refused connection and a missing URL are clear errors' => function (): void {
        $url = example_supplier()->url;
        Assert::contains('answered something that is not JSON: <html>', example_failure(example_element("$url/notjson"))->getMessage());
        Assert::contains('answered an error: this article is blocked', example_failure(example_element($url, [], 'blocked'))->getMessage());
        Assert::contains('Connection refused', example_failure(example_element('http://127.0.0.1:1'))->getMessage());
        $e = Assert::throws(\InvalidArgumentException::class, static fn () => example_translator()->items(['class' => 'partsapi', 'code' => 'x']));
        Assert::contains('params.url', $e->getMessage());
    },
    'reset hook: per-job state is dropped after each job' => function (): void {
        $translator = example_translator();
        $element = example_element(example_supplier()->url);
        $translator->items($element);
        $translator->items($element);
        Assert::same(2, count($translator->requests()), 'without reset the state of one job reaches the next');
        $translator->reset();
        Assert::same([], $translator->requests());
        $handlers = Handlers::load(ROOT . '/script/example/handlers.php');
        Assert::true($handlers->reset !== null, 'script/example/handlers.php gives a reset handler');
    },
    'exec mode: suppliers.php and items.php answer like the handlers; a failure exits 1 with the exception' => function (): void {
        $url = example_supplier()->url;
        [$code, $stdout, $stderr] = example_exec('script/example/suppliers.php', json_encode(EXAMPLE_REQUEST));
        Assert::same(0, $code, "suppliers.php exit code; stderr: $stderr");
        $suppliers = json_decode($stdout, true)['suppliers'];
        Assert::same($url, $suppliers[0]['params']['url'], 'EXAMPLE_SUPPLIER_URL is used');

        [$code, $stdout, $stderr] = example_exec('script/example/items.php', json_encode($suppliers[0]));
        Assert::same(0, $code, "items.php exit code; stderr: $stderr");
        $expected = example_translator()->items($suppliers[0]);
        Assert::same(json_encode($expected, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE) . "\n", $stdout);

        [$code, $stdout, $stderr] = example_exec('script/example/items.php', json_encode(example_element("$url/fail")));
        Assert::same(1, $code);
        Assert::same('', $stdout);
        Assert::contains('Aggregator\Example\SupplierException: partsapi: HTTP 500', $stderr);
        Assert::contains('PartsApiTranslator.php:', $stderr);
        Assert::contains('#0 ', $stderr);
    },
    'worker mode: worker.php script/example/handlers.php answers jobs and reports a failure with file and line' => function (): void {
        $url = example_supplier()->url;
        $worker = WorkerProcess::worker(['script/example/handlers.php'], null, [], ['EXAMPLE_SUPPLIER_URL' => $url]);
        $worker->handshake();
        $result = $worker->job(Handlers::KIND_SUPPLIERS, json_encode(EXAMPLE_REQUEST));
        Assert::same(Frame::CODEC_RAW, $result->flags, 'suppliers answer: ' . $result->payload);
        $element = json_decode($result->payload, true)['suppliers'][0];
        $result = $worker->job(Handlers::KIND_ITEMS, json_encode($element));
        Assert::same(Frame::CODEC_RAW, $result->flags, 'items answer: ' . $result->payload);
        Assert::same(2, count(json_decode($result->payload, true)['items']));

        $element['params']['url'] = "$url/fail";
        $result = $worker->job(Handlers::KIND_ITEMS, json_encode($element));
        Assert::same(Frame::CODEC_JSON | Frame::ERROR, $result->flags);
        $error = json_decode($result->payload, true);
        Assert::same(SupplierException::class, $error['class']);
        Assert::contains('HTTP 500', $error['error']);
        Assert::same(realpath(ROOT . '/script/example/PartsApiTranslator.php'), realpath($error['file']));
        Assert::true(is_int($error['line']) && $error['line'] > 0, 'a line number');
        Assert::contains('PartsApiTranslator->items()', $error['trace']);

        $worker->send(new Frame(Frame::CONTROL | Frame::CODEC_JSON, '{"stop":true}'));
        Assert::same(0, $worker->wait(), 'stderr: ' . $worker->stderr());
    },
];

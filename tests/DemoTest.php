<?php

declare(strict_types=1);

use Aggregator\Demo\Demo;
use Aggregator\Tests\Assert;

require_once ROOT . '/script/lib/Demo.php';

putenv('DEMO_DELAY_MS=0');

/** A search request as the aggregator passes it to the suppliers script. */
function demo_request(string $code): array
{
    $fields = ['code' => $code, 'brand' => 'ctr', 'apikey' => '111111', 'analog' => 1];
    return $fields + ['params' => $fields];
}

/**
 * Play a scenario the way the aggregator would (SPEC §3) and count the
 * browser messages (SPEC §4). timeout-* suppliers are not called (they sleep
 * 60 s); they count as E_SCRIPT_TIMEOUT.
 *
 * @return array<string, int> e.g. ['PENDING' => 3, 'SENDING' => 9, 'SUCCESS' => 3]
 */
function demo_play(string $code): array
{
    $counts = [];
    $count = static function (string $what) use (&$counts): void {
        $counts[$what] = ($counts[$what] ?? 0) + 1;
    };
    try {
        $answer = Demo::suppliers(demo_request($code));
    } catch (\RuntimeException) {
        $count('ERROR E_SCRIPT_ERROR');
        return $counts;
    }
    if (!is_array($answer)) {
        $count('ERROR E_SUPPLIERS_JSON');
        return $counts;
    }
    if (!is_array($answer['suppliers'] ?? null)) {
        $count('ERROR E_SUPPLIERS_RESPONSE');
        return $counts;
    }
    $queue = $answer['suppliers'];
    while ($queue !== []) {
        $supplier = array_shift($queue);
        Assert::true(is_array($supplier['info'] ?? null), 'every supplier has an info object');
        $count('PENDING');
        if (str_starts_with($supplier['class'], 'timeout-')) {
            $count('ERROR E_SCRIPT_TIMEOUT');
            continue;
        }
        try {
            $answer = Demo::items($supplier);
        } catch (\RuntimeException) {
            $count('ERROR E_SCRIPT_ERROR');
            continue;
        }
        if (!is_array($answer)) {
            $count('ERROR E_ITEMS_JSON');
            continue;
        }
        if (!is_array($answer['items'] ?? null)) {
            $count('ERROR E_ITEMS_RESPONSE');
            continue;
        }
        foreach ($answer['items'] as $_) {
            $count('SENDING');
        }
        $count('SUCCESS');
        array_push($queue, ...($answer['suppliers'] ?? []));
    }
    ksort($counts);
    return $counts;
}

/** SPEC §6, what the browser sees per scenario (sessionTimeout: before the session times out). */
const DEMO_EXPECTED = [
    'normal' => ['PENDING' => 3, 'SENDING' => 9, 'SUCCESS' => 3],
    '3310' => ['PENDING' => 3, 'SENDING' => 9, 'SUCCESS' => 3],
    'analog' => ['PENDING' => 5, 'SENDING' => 15, 'SUCCESS' => 5],
    'mixed' => ['ERROR E_SCRIPT_ERROR' => 1, 'ERROR E_SCRIPT_TIMEOUT' => 1, 'PENDING' => 6, 'SENDING' => 12, 'SUCCESS' => 4],
    'emptySuppliers' => [],
    'suppliersError' => ['ERROR E_SCRIPT_ERROR' => 1],
    'suppliersNotJson' => ['ERROR E_SUPPLIERS_JSON' => 1],
    'suppliersBadResponse' => ['ERROR E_SUPPLIERS_RESPONSE' => 1],
    'emptyItems' => ['PENDING' => 3, 'SUCCESS' => 3],
    'itemsTimeout' => ['ERROR E_SCRIPT_TIMEOUT' => 3, 'PENDING' => 3],
    'itemsError' => ['ERROR E_SCRIPT_ERROR' => 2, 'PENDING' => 2],
    'itemsBadJson' => ['ERROR E_ITEMS_JSON' => 2, 'PENDING' => 2],
    'itemsBadResponse' => ['ERROR E_ITEMS_RESPONSE' => 2, 'PENDING' => 2],
    'sessionTimeout' => ['ERROR E_SCRIPT_TIMEOUT' => 2000, 'PENDING' => 2001, 'SENDING' => 3, 'SUCCESS' => 1],
];

/** @return string[] the supplier classes answered for $code */
function demo_classes(string $code): array
{
    return array_column(Demo::suppliers(demo_request($code))['suppliers'], 'class');
}

$tests = [];
foreach (DEMO_EXPECTED as $code => $expected) {
    $code = (string)$code; // "3310" became an int key
    $tests["scenario $code gives the messages of SPEC §6"] = function () use ($code, $expected): void {
        Assert::same($expected, demo_play($code));
    };
}

return $tests + [
    'supplier classes per scenario' => function (): void {
        Assert::same(['normal-1', 'normal-2', 'normal-3'], demo_classes('normal'));
        Assert::same(['normal-1', 'normal-2', 'normal-3'], demo_classes('3310'));
        Assert::same(['normal-1', 'normal-2', 'analog-3'], demo_classes('analog'));
        Assert::same(['normal-1', 'analog-2', 'error-3', 'timeout-4'], demo_classes('mixed'));
        Assert::same([], demo_classes('emptySuppliers'));
        Assert::same(['empty-1', 'empty-2', 'empty-3'], demo_classes('emptyItems'));
        Assert::same(['timeout-1', 'timeout-2', 'timeout-3'], demo_classes('itemsTimeout'));
        Assert::same(['error-1', 'error-2'], demo_classes('itemsError'));
        Assert::same(['badjson-1', 'badjson-2'], demo_classes('itemsBadJson'));
        Assert::same(['badresponse-1', 'badresponse-2'], demo_classes('itemsBadResponse'));
        $session = demo_classes('sessionTimeout');
        Assert::same(2001, count($session));
        Assert::same(['normal-1', 'timeout-2', 'timeout-3'], array_slice($session, 0, 3));
        Assert::same('timeout-2001', end($session));
    },
    'a supplier element carries the request fields, analog as a string, and info' => function (): void {
        $supplier = Demo::suppliers(demo_request('normal'))['suppliers'][0];
        Assert::same([
            'class' => 'normal-1',
            'params' => ['login' => 'demo', 'password' => 'demo'],
            'code' => 'normal',
            'brand' => 'ctr',
            'analog' => '1',
            'info' => ['supplier' => 'normal-1', 'title' => 'Demo supplier normal-1'],
        ], $supplier);
    },
    'request fields are read from params when missing at the top level' => function (): void {
        $answer = Demo::suppliers(['params' => ['code' => 'itemsError', 'brand' => 'b', 'analog' => 0]]);
        Assert::same(['error-1', 'error-2'], array_column($answer['suppliers'], 'class'));
        Assert::same('b', $answer['suppliers'][0]['brand']);
        Assert::same('0', $answer['suppliers'][0]['analog']);
    },
    'the failing suppliers scenarios' => function (): void {
        Assert::throws(\RuntimeException::class, fn () => Demo::suppliers(demo_request('suppliersError')));
        Assert::same('Not a JSON', Demo::suppliers(demo_request('suppliersNotJson')));
        $bad = Demo::suppliers(demo_request('suppliersBadResponse'));
        Assert::true(is_array($bad) && !isset($bad['suppliers']), 'suppliersBadResponse has no suppliers');
    },
    'items are deterministic' => function (): void {
        $items = Demo::items(['class' => 'normal-2', 'brand' => 'ctr'])['items'];
        Assert::same(3, count($items));
        Assert::same([
            'code' => 'normal-2-3',
            'brand' => 'ctr',
            'name' => 'Demo part 3 from normal-2',
            'price' => 23.99,
            'quantity' => 15,
            'supplier' => 'normal-2',
        ], $items[2]);
        Assert::same(Demo::items(['class' => 'normal-2', 'brand' => 'ctr']), Demo::items(['class' => 'normal-2', 'brand' => 'ctr']));
    },
    'items per class' => function (): void {
        $supplier = Demo::suppliers(demo_request('analog'))['suppliers'][2];
        $analog = Demo::items($supplier);
        Assert::same(3, count($analog['items']));
        Assert::same(['normal-31', 'normal-32'], array_column($analog['suppliers'], 'class'));
        foreach ($analog['suppliers'] as $nested) {
            Assert::same(['supplier' => $nested['class'], 'title' => 'Demo supplier ' . $nested['class'], 'parent' => 'analog-3'], $nested['info']);
            Assert::same('analog', $nested['code']);
            Assert::same(3, count(Demo::items($nested)['items']));
            Assert::true(!isset(Demo::items($nested)['suppliers']), 'nested normal suppliers have no analogs');
        }
        Assert::same(['items' => []], Demo::items(['class' => 'empty-1']));
        Assert::throws(\RuntimeException::class, fn () => Demo::items(['class' => 'error-1']));
        Assert::same('Not a JSON', Demo::items(['class' => 'badjson-1']));
        $bad = Demo::items(['class' => 'badresponse-1']);
        Assert::true(is_array($bad) && !isset($bad['items']), 'badresponse has no items');
        Assert::same(3, count(Demo::items(['class' => 'CManRossko'])['items']), 'an unknown class is normal');
    },
    'DEMO_DELAY_MS is read on every call' => function (): void {
        putenv('DEMO_DELAY_MS=0');
        $start = microtime(true);
        for ($i = 0; $i < 20; $i++) {
            Demo::items(['class' => 'normal-1']);
        }
        Assert::true(microtime(true) - $start < 0.5, 'DEMO_DELAY_MS=0 means no wait');
        putenv('DEMO_DELAY_MS=1');
        $start = microtime(true);
        Demo::items(['class' => 'normal-1']);
        Assert::true(microtime(true) - $start < 0.5, 'DEMO_DELAY_MS=1 waits at most 1 ms');
        putenv('DEMO_DELAY_MS=0');
    },
    'timeout classes really sleep (checked for 1.5 s in child processes)' => function (): void {
        $runs = [
            'suppliersTimeout' => ['script/suppliers.php', json_encode(demo_request('suppliersTimeout'))],
            'timeout-1' => ['script/items.php', '{"class":"timeout-1"}'],
        ];
        $processes = [];
        foreach ($runs as $name => [$script, $input]) {
            $processes[$name] = proc_open([PHP_BINARY, ROOT . "/$script"], [0 => ['pipe', 'r'], 1 => ['file', '/dev/null', 'w']], $pipes, ROOT, getenv() + ['DEMO_DELAY_MS' => '0']);
            fwrite($pipes[0], $input);
            fclose($pipes[0]);
        }
        usleep(1_500_000);
        foreach ($processes as $name => $process) {
            $running = proc_get_status($process)['running'];
            proc_terminate($process, 9);
            proc_close($process);
            Assert::true($running, "$name should still be sleeping");
        }
    },
];

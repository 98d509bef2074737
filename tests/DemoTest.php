<?php

declare(strict_types=1);

namespace Aggregator\Tests;

use Aggregator\Demo\Demo;
use Aggregator\PublicError;
use PHPUnit\Framework\TestCase;

final class DemoTest extends TestCase
{
    use AssertThrows;

    /** SPEC §6, what the browser sees per scenario (sessionTimeout: before the session times out). */
    private const EXPECTED = [
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
        // Not in SPEC §6: a supplier that refuses with a reason the customer reads.
        'publicError' => ['ERROR E_SCRIPT_ERROR' => 1, 'PENDING' => 2, 'SENDING' => 3, 'SUCCESS' => 1],
    ];

    /** DEMO_DELAY_MS as it was before the test (false: not set). */
    private string|false $delayBefore = false;

    /** Demo waits up to DEMO_DELAY_MS (default 300) per answer: none in these tests. */
    protected function setUp(): void
    {
        $this->delayBefore = getenv('DEMO_DELAY_MS');
        putenv('DEMO_DELAY_MS=0');
    }

    protected function tearDown(): void
    {
        putenv($this->delayBefore === false ? 'DEMO_DELAY_MS' : "DEMO_DELAY_MS=$this->delayBefore");
    }

    /** @return iterable<string, array{0: string, 1: array<string, int>}> */
    public static function scenarios(): iterable
    {
        foreach (self::EXPECTED as $code => $expected) {
            $code = (string)$code; // "3310" became an int key
            yield "code $code" => [$code, $expected]; // a name, not #N: "3310" would be an int key
        }
    }

    /**
     * @dataProvider scenarios
     * @testdox scenario $code gives the messages of SPEC §6
     * @param array<string, int> $expected
     */
    public function testScenarioGivesTheMessagesOfSpec6(string $code, array $expected): void
    {
        self::assertSame($expected, self::play($code));
    }

    /** @testdox supplier classes per scenario */
    public function testSupplierClassesPerScenario(): void
    {
        self::assertSame(['normal-1', 'normal-2', 'normal-3'], self::classes('normal'));
        self::assertSame(['normal-1', 'normal-2', 'normal-3'], self::classes('3310'));
        self::assertSame(['normal-1', 'normal-2', 'analog-3'], self::classes('analog'));
        self::assertSame(['normal-1', 'analog-2', 'error-3', 'timeout-4'], self::classes('mixed'));
        self::assertSame([], self::classes('emptySuppliers'));
        self::assertSame(['empty-1', 'empty-2', 'empty-3'], self::classes('emptyItems'));
        self::assertSame(['timeout-1', 'timeout-2', 'timeout-3'], self::classes('itemsTimeout'));
        self::assertSame(['error-1', 'error-2'], self::classes('itemsError'));
        self::assertSame(['badjson-1', 'badjson-2'], self::classes('itemsBadJson'));
        self::assertSame(['badresponse-1', 'badresponse-2'], self::classes('itemsBadResponse'));
        $session = self::classes('sessionTimeout');
        self::assertSame(2001, count($session));
        self::assertSame(['normal-1', 'timeout-2', 'timeout-3'], array_slice($session, 0, 3));
        self::assertSame('timeout-2001', end($session));
    }

    /** @testdox a supplier element carries the request fields, analog as a string, and info */
    public function testASupplierElementCarriesTheRequestFieldsAnalogAsAStringAndInfo(): void
    {
        $supplier = Demo::suppliers(self::request('normal'))['suppliers'][0];
        self::assertSame([
            'class' => 'normal-1',
            'params' => ['login' => 'demo', 'password' => 'demo'],
            'code' => 'normal',
            'brand' => 'ctr',
            'analog' => '1',
            'info' => ['supplier' => 'normal-1', 'title' => 'Demo supplier normal-1'],
        ], $supplier);
    }

    /** @testdox request fields are read from params when missing at the top level */
    public function testRequestFieldsAreReadFromParamsWhenMissingAtTheTopLevel(): void
    {
        $answer = Demo::suppliers(['params' => ['code' => 'itemsError', 'brand' => 'b', 'analog' => 0]]);
        self::assertSame(['error-1', 'error-2'], array_column($answer['suppliers'], 'class'));
        self::assertSame('b', $answer['suppliers'][0]['brand']);
        self::assertSame('0', $answer['suppliers'][0]['analog']);
    }

    /** @testdox the failing suppliers scenarios */
    public function testTheFailingSuppliersScenarios(): void
    {
        self::assertThrows(\RuntimeException::class, fn () => Demo::suppliers(self::request('suppliersError')));
        self::assertSame('Not a JSON', Demo::suppliers(self::request('suppliersNotJson')));
        $bad = Demo::suppliers(self::request('suppliersBadResponse'));
        self::assertTrue(is_array($bad) && !isset($bad['suppliers']), 'suppliersBadResponse has no suppliers');
    }

    /** @testdox the refused apikey and refused-* suppliers throw a PublicError; the other failures do not */
    public function testTheRefusedApikeyAndRefusedSuppliersThrowAPublicError(): void
    {
        $request = ['apikey' => Demo::REFUSED_APIKEY] + self::request('normal');
        $e = self::assertThrows(PublicError::class, fn () => Demo::suppliers($request));
        self::assertSame('API key 999 may not search', $e->getMessage());
        $e = self::assertThrows(PublicError::class, fn () => Demo::items(['class' => 'refused-2']));
        self::assertSame('Supplier refused-2 does not deliver to your region', $e->getMessage());
        self::assertSame(['normal-1', 'refused-2'], self::classes('publicError'));
        self::assertNotInstanceOf(PublicError::class, self::assertThrows(\RuntimeException::class, fn () => Demo::items(['class' => 'error-1'])));
        self::assertNotInstanceOf(PublicError::class, self::assertThrows(\RuntimeException::class, fn () => Demo::suppliers(self::request('suppliersError'))));
    }

    /** @testdox items are deterministic */
    public function testItemsAreDeterministic(): void
    {
        $items = Demo::items(['class' => 'normal-2', 'brand' => 'ctr'])['items'];
        self::assertSame(3, count($items));
        self::assertSame([
            'code' => 'normal-2-3',
            'brand' => 'ctr',
            'name' => 'Demo part 3 from normal-2',
            'price' => 23.99,
            'quantity' => 15,
            'supplier' => 'normal-2',
        ], $items[2]);
        self::assertSame(Demo::items(['class' => 'normal-2', 'brand' => 'ctr']), Demo::items(['class' => 'normal-2', 'brand' => 'ctr']));
    }

    /** @testdox items per class */
    public function testItemsPerClass(): void
    {
        $supplier = Demo::suppliers(self::request('analog'))['suppliers'][2];
        $analog = Demo::items($supplier);
        self::assertSame(3, count($analog['items']));
        self::assertSame(['normal-31', 'normal-32'], array_column($analog['suppliers'], 'class'));
        foreach ($analog['suppliers'] as $nested) {
            self::assertSame(['supplier' => $nested['class'], 'title' => 'Demo supplier ' . $nested['class'], 'parent' => 'analog-3'], $nested['info']);
            self::assertSame('analog', $nested['code']);
            self::assertSame(3, count(Demo::items($nested)['items']));
            self::assertTrue(!isset(Demo::items($nested)['suppliers']), 'nested normal suppliers have no analogs');
        }
        self::assertSame(['items' => []], Demo::items(['class' => 'empty-1']));
        self::assertThrows(\RuntimeException::class, fn () => Demo::items(['class' => 'error-1']));
        self::assertSame('Not a JSON', Demo::items(['class' => 'badjson-1']));
        $bad = Demo::items(['class' => 'badresponse-1']);
        self::assertTrue(is_array($bad) && !isset($bad['items']), 'badresponse has no items');
        self::assertSame(3, count(Demo::items(['class' => 'CManRossko'])['items']), 'an unknown class is normal');
    }

    /** @testdox DEMO_DELAY_MS is read on every call */
    public function testDemoDelayMsIsReadOnEveryCall(): void
    {
        putenv('DEMO_DELAY_MS=0');
        $start = microtime(true);
        for ($i = 0; $i < 20; $i++) {
            Demo::items(['class' => 'normal-1']);
        }
        self::assertTrue(microtime(true) - $start < 0.5, 'DEMO_DELAY_MS=0 means no wait');
        putenv('DEMO_DELAY_MS=1');
        $start = microtime(true);
        Demo::items(['class' => 'normal-1']);
        self::assertTrue(microtime(true) - $start < 0.5, 'DEMO_DELAY_MS=1 waits at most 1 ms');
        putenv('DEMO_DELAY_MS=0');
    }

    /** @testdox timeout classes really sleep (checked for 1.5 s in child processes) */
    public function testTimeoutClassesReallySleep(): void
    {
        $runs = [
            'suppliersTimeout' => ['script/suppliers.php', json_encode(self::request('suppliersTimeout'))],
            'timeout-1' => ['script/items.php', '{"class":"timeout-1"}'],
        ];
        $processes = [];
        foreach ($runs as $name => [$script, $input]) {
            $processes[$name] = proc_open([PHP_BINARY, ROOT . "/$script"], [0 => ['pipe', 'r'], 1 => ['file', '/dev/null', 'w']], $pipes, ROOT, ['DEMO_DELAY_MS' => '0'] + getenv());
            fwrite($pipes[0], $input);
            fclose($pipes[0]);
        }
        usleep(1_500_000);
        foreach ($processes as $name => $process) {
            $running = proc_get_status($process)['running'];
            proc_terminate($process, 9);
            proc_close($process);
            self::assertTrue($running, "$name should still be sleeping");
        }
    }

    /**
     * A search request as the aggregator passes it to the suppliers script.
     *
     * @return array<string, mixed>
     */
    private static function request(string $code): array
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
    private static function play(string $code): array
    {
        $counts = [];
        $count = static function (string $what) use (&$counts): void {
            $counts[$what] = ($counts[$what] ?? 0) + 1;
        };
        try {
            $answer = Demo::suppliers(self::request($code));
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
            self::assertTrue(is_array($supplier['info'] ?? null), 'every supplier has an info object');
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

    /** @return string[] the supplier classes answered for $code */
    private static function classes(string $code): array
    {
        return array_column(Demo::suppliers(self::request($code))['suppliers'], 'class');
    }
}

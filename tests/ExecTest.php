<?php

declare(strict_types=1);

namespace Aggregator\Tests;

use PHPUnit\Framework\TestCase;

final class ExecTest extends TestCase
{
    private const REQUEST = '{"code":"normal","brand":"x","apikey":"1","analog":1,"params":{"code":"normal","brand":"x","apikey":"1","analog":1}}';

    /** @testdox suppliers.php: normal gives 3 suppliers on one line */
    public function testSuppliersNormalGivesThreeSuppliersOnOneLine(): void
    {
        [$code, $stdout, $stderr] = self::runScript('script/suppliers.php', self::REQUEST);
        self::assertSame(0, $code, "exit code; stderr: $stderr");
        self::assertTrue(str_ends_with($stdout, "}\n") && substr_count($stdout, "\n") === 1, 'one JSON line');
        $suppliers = json_decode($stdout, true)['suppliers'];
        self::assertSame(['normal-1', 'normal-2', 'normal-3'], array_column($suppliers, 'class'));
    }

    /** @testdox suppliers.php reads params when the top-level fields are missing (legacy input) */
    public function testSuppliersReadsParamsWhenTopLevelFieldsAreMissing(): void
    {
        [$code, $stdout] = self::runScript('script/suppliers.php', '{"params":{"code":"itemsBadJson","brand":"x"}}');
        self::assertSame(0, $code);
        self::assertSame(['badjson-1', 'badjson-2'], array_column(json_decode($stdout, true)['suppliers'], 'class'));
    }

    /** @testdox suppliers.php: a string answer is printed as-is */
    public function testSuppliersPrintsAStringAnswerAsIs(): void
    {
        self::assertSame([0, "Not a JSON\n", ''], self::runScript('script/suppliers.php', '{"code":"suppliersNotJson"}'));
    }

    /** @testdox items.php: error-1 exits 1 with the exception on stderr */
    public function testItemsError1Exits1WithTheExceptionOnStderr(): void
    {
        [$code, $stdout, $stderr] = self::runScript('script/items.php', '{"class":"error-1","code":"itemsError"}');
        self::assertSame(1, $code);
        self::assertSame('', $stdout);
        self::assertStringContainsString('RuntimeException: demo: the items script failed for supplier error-1', $stderr);
        self::assertStringContainsString('#0 ', $stderr);
    }

    /** @testdox items.php: each class */
    public function testItemsEachClass(): void
    {
        $count = static function (string $class): int {
            [$code, $stdout, $stderr] = self::runScript('script/items.php', json_encode(['class' => $class, 'code' => 'normal', 'brand' => 'x']));
            self::assertSame(0, $code, "$class: $stderr");
            return count(json_decode($stdout, true)['items']);
        };
        self::assertSame(3, $count('normal-1'));
        self::assertSame(3, $count('analog-3'));
        self::assertSame(0, $count('empty-1'));
        [, $stdout] = self::runScript('script/items.php', '{"class":"analog-3"}');
        self::assertSame(['normal-31', 'normal-32'], array_column(json_decode($stdout, true)['suppliers'], 'class'));
        self::assertSame([0, "Not a JSON\n", ''], self::runScript('script/items.php', '{"class":"badjson-1"}'));
        self::assertSame([0, "{\"foo\":\"bar\"}\n", ''], self::runScript('script/items.php', '{"class":"badresponse-1"}'));
    }

    /** @testdox invalid JSON on stdin: exit 1 with a message */
    public function testInvalidJsonOnStdinExits1WithAMessage(): void
    {
        [$code, $stdout, $stderr] = self::runScript('script/items.php', 'not json');
        self::assertSame(1, $code);
        self::assertSame('', $stdout);
        self::assertStringContainsString('stdin must hold a JSON object', $stderr);
        self::assertSame(1, self::runScript('script/items.php', '"a string"')[0]);
    }

    /** @testdox legacy scripts run unmodified */
    public function testLegacyScriptsRunUnmodified(): void
    {
        [$code, $stdout, $stderr] = self::runScript('script/legacy/suppliers.php', self::REQUEST);
        self::assertSame(0, $code, $stderr);
        $suppliers = json_decode($stdout, true)['suppliers'];
        self::assertSame(['legacy-1', 'legacy-2'], array_column($suppliers, 'class'));
        self::assertSame('normal', $suppliers[0]['code']);
        self::assertSame(['supplier' => 'legacy-1'], $suppliers[0]['info']);
        [$code, $stdout, $stderr] = self::runScript('script/legacy/items.php', json_encode($suppliers[1]));
        self::assertSame(0, $code, $stderr);
        self::assertSame(2, count(json_decode($stdout, true)['items']));
    }

    /**
     * Run `php -d display_errors=stderr <script>` with $stdin, as exec mode does.
     *
     * @return array{0: int, 1: string, 2: string} exit code, stdout, stderr
     */
    private static function runScript(string $script, string $stdin): array
    {
        $process = proc_open(
            [PHP_BINARY, '-d', 'display_errors=stderr', $script],
            [0 => ['pipe', 'r'], 1 => ['pipe', 'w'], 2 => ['pipe', 'w']],
            $pipes,
            ROOT,
            ['DEMO_DELAY_MS' => '0'] + getenv(),
        );
        fwrite($pipes[0], $stdin);
        fclose($pipes[0]);
        $stdout = stream_get_contents($pipes[1]);
        $stderr = stream_get_contents($pipes[2]);
        fclose($pipes[1]);
        fclose($pipes[2]);
        return [proc_close($process), $stdout, $stderr];
    }
}

<?php

declare(strict_types=1);

use Aggregator\Tests\Assert;

/**
 * Run `php -d display_errors=stderr <script>` with $stdin, as exec mode does.
 *
 * @return array{0: int, 1: string, 2: string} exit code, stdout, stderr
 */
function run_script(string $script, string $stdin): array
{
    $process = proc_open(
        [PHP_BINARY, '-d', 'display_errors=stderr', $script],
        [0 => ['pipe', 'r'], 1 => ['pipe', 'w'], 2 => ['pipe', 'w']],
        $pipes,
        ROOT,
        getenv() + ['DEMO_DELAY_MS' => '0'],
    );
    fwrite($pipes[0], $stdin);
    fclose($pipes[0]);
    $stdout = stream_get_contents($pipes[1]);
    $stderr = stream_get_contents($pipes[2]);
    fclose($pipes[1]);
    fclose($pipes[2]);
    return [proc_close($process), $stdout, $stderr];
}

const EXEC_REQUEST = '{"code":"normal","brand":"x","apikey":"1","analog":1,"params":{"code":"normal","brand":"x","apikey":"1","analog":1}}';

return [
    'suppliers.php: normal gives 3 suppliers on one line' => function (): void {
        [$code, $stdout, $stderr] = run_script('script/suppliers.php', EXEC_REQUEST);
        Assert::same(0, $code, "exit code; stderr: $stderr");
        Assert::true(str_ends_with($stdout, "}\n") && substr_count($stdout, "\n") === 1, 'one JSON line');
        $suppliers = json_decode($stdout, true)['suppliers'];
        Assert::same(['normal-1', 'normal-2', 'normal-3'], array_column($suppliers, 'class'));
    },
    'suppliers.php reads params when the top-level fields are missing (legacy input)' => function (): void {
        [$code, $stdout] = run_script('script/suppliers.php', '{"params":{"code":"itemsBadJson","brand":"x"}}');
        Assert::same(0, $code);
        Assert::same(['badjson-1', 'badjson-2'], array_column(json_decode($stdout, true)['suppliers'], 'class'));
    },
    'suppliers.php: a string answer is printed as-is' => function (): void {
        Assert::same([0, "Not a JSON\n", ''], run_script('script/suppliers.php', '{"code":"suppliersNotJson"}'));
    },
    'items.php: error-1 exits 1 with the exception on stderr' => function (): void {
        [$code, $stdout, $stderr] = run_script('script/items.php', '{"class":"error-1","code":"itemsError"}');
        Assert::same(1, $code);
        Assert::same('', $stdout);
        Assert::contains('RuntimeException: demo: the items script failed for supplier error-1', $stderr);
        Assert::contains('#0 ', $stderr);
    },
    'items.php: each class' => function (): void {
        $count = static function (string $class): int {
            [$code, $stdout, $stderr] = run_script('script/items.php', json_encode(['class' => $class, 'code' => 'normal', 'brand' => 'x']));
            Assert::same(0, $code, "$class: $stderr");
            return count(json_decode($stdout, true)['items']);
        };
        Assert::same(3, $count('normal-1'));
        Assert::same(3, $count('analog-3'));
        Assert::same(0, $count('empty-1'));
        [, $stdout] = run_script('script/items.php', '{"class":"analog-3"}');
        Assert::same(['normal-31', 'normal-32'], array_column(json_decode($stdout, true)['suppliers'], 'class'));
        Assert::same([0, "Not a JSON\n", ''], run_script('script/items.php', '{"class":"badjson-1"}'));
        Assert::same([0, "{\"foo\":\"bar\"}\n", ''], run_script('script/items.php', '{"class":"badresponse-1"}'));
    },
    'invalid JSON on stdin: exit 1 with a message' => function (): void {
        [$code, $stdout, $stderr] = run_script('script/items.php', 'not json');
        Assert::same(1, $code);
        Assert::same('', $stdout);
        Assert::contains('stdin must hold a JSON object', $stderr);
        Assert::same(1, run_script('script/items.php', '"a string"')[0]);
    },
    'legacy scripts run unmodified' => function (): void {
        [$code, $stdout, $stderr] = run_script('script/legacy/suppliers.php', EXEC_REQUEST);
        Assert::same(0, $code, $stderr);
        $suppliers = json_decode($stdout, true)['suppliers'];
        Assert::same(['legacy-1', 'legacy-2'], array_column($suppliers, 'class'));
        Assert::same('normal', $suppliers[0]['code']);
        Assert::same(['supplier' => 'legacy-1'], $suppliers[0]['info']);
        [$code, $stdout, $stderr] = run_script('script/legacy/items.php', json_encode($suppliers[1]));
        Assert::same(0, $code, $stderr);
        Assert::same(2, count(json_decode($stdout, true)['items']));
    },
];

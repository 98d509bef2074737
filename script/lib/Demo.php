<?php

declare(strict_types=1);

namespace Aggregator\Demo;

use Aggregator\PublicError;

/**
 * The demo translator: test data for every scenario of SPEC.md section 6.
 *
 * The request's `code` picks the suppliers scenario; a supplier's `class`
 * prefix (the part before the last "-N") picks what its items call does.
 * Shared by the exec scripts (script/suppliers.php, script/items.php) and the
 * worker handlers (script/handlers.php).
 *
 * Each answer first waits a random 0..DEMO_DELAY_MS milliseconds (env var,
 * default 300, 0 = no wait), like a real supplier's API would.
 *
 * Beyond SPEC section 6, two cases show what a translator may tell the
 * customer (\Aggregator\PublicError, the browser's "_message"): the apikey
 * REFUSED_APIKEY may not search at all, and a refused-* supplier (scenario
 * publicError) refuses with a reason. Every other failure stays a plain
 * exception, whose text reaches the log only.
 */
final class Demo
{
    /** Seconds a timeout-* supplier (or suppliersTimeout) sleeps: far past any script timeout. */
    public const TIMEOUT_SLEEP = 60;

    public const DEFAULT_DELAY_MS = 300;

    public const ITEMS_PER_SUPPLIER = 3;

    /** The apikey the demo refuses: its search ends with a PublicError in the suppliers handler. */
    public const REFUSED_APIKEY = '999';

    /** Suppliers answered per request code; any other code is "normal". */
    private const SUPPLIERS = [
        'normal' => ['normal-1', 'normal-2', 'normal-3'],
        'analog' => ['normal-1', 'normal-2', 'analog-3'],
        'mixed' => ['normal-1', 'analog-2', 'error-3', 'timeout-4'],
        'emptySuppliers' => [],
        'emptyItems' => ['empty-1', 'empty-2', 'empty-3'],
        'itemsTimeout' => ['timeout-1', 'timeout-2', 'timeout-3'],
        'itemsError' => ['error-1', 'error-2'],
        'itemsBadJson' => ['badjson-1', 'badjson-2'],
        'itemsBadResponse' => ['badresponse-1', 'badresponse-2'],
        'publicError' => ['normal-1', 'refused-2'],
    ];

    /** How many timeout-* suppliers the sessionTimeout scenario adds after normal-1. */
    public const SESSION_TIMEOUT_SUPPLIERS = 2000;

    /**
     * The suppliers answer for a search request.
     *
     * Fields are read at the top level, falling back to `params` (where the
     * first implementation put them).
     *
     * @param mixed[] $request e.g. {"code":"normal","brand":"ctr","apikey":"1","analog":1,"params":{...}}
     * @return mixed[]|string
     */
    public static function suppliers(array $request): array|string
    {
        $code = self::field($request, 'code');
        $brand = self::field($request, 'brand');
        $analog = self::field($request, 'analog');
        $apikey = self::field($request, 'apikey');

        // Authorizing by apikey: a key that may not search gets a reason it can
        // read, not an empty list (a bare close 1000, as if nothing were found).
        if ($apikey === self::REFUSED_APIKEY) {
            self::delay();
            throw new PublicError("API key $apikey may not search");
        }

        switch ($code) {
            case 'suppliersTimeout':
                self::sleepFor(self::TIMEOUT_SLEEP);
                break;
            case 'suppliersError':
                self::delay();
                throw new \RuntimeException('demo: the suppliers script failed (scenario suppliersError)');
            case 'suppliersNotJson':
                self::delay();
                return 'Not a JSON';
            case 'suppliersBadResponse':
                self::delay();
                return ['foo' => 'bar'];
            default:
                self::delay();
        }

        $suppliers = [];
        foreach (self::supplierClasses($code) as $class) {
            $suppliers[] = self::supplier($class, $code, $brand, $analog);
        }
        return ['suppliers' => $suppliers];
    }

    /**
     * The items answer for one supplier element (as produced by suppliers()).
     *
     * normal-* → 3 items; analog-* → 3 items and 2 nested normal-* suppliers;
     * empty-* → no items; timeout-* → sleeps 60 s; error-* → throws;
     * badjson-* → "Not a JSON"; badresponse-* → JSON without "items";
     * refused-* → throws a PublicError the customer reads.
     * An unknown class behaves like normal-*.
     *
     * @param mixed[] $supplier
     * @return mixed[]|string
     */
    public static function items(array $supplier): array|string
    {
        $class = (string)($supplier['class'] ?? '');
        [$kind, $number] = self::splitClass($class);

        if ($kind === 'timeout') {
            self::sleepFor(self::TIMEOUT_SLEEP);
        } else {
            self::delay();
        }

        return match ($kind) {
            'empty' => ['items' => []],
            'error' => throw new \RuntimeException("demo: the items script failed for supplier $class"),
            'refused' => throw new PublicError("Supplier $class does not deliver to your region"),
            'badjson' => 'Not a JSON',
            'badresponse' => ['foo' => 'bar'],
            'analog' => [
                'items' => self::makeItems($class, $number, $supplier),
                'suppliers' => self::nestedSuppliers($class, $number, $supplier),
            ],
            default => ['items' => self::makeItems($class, $number, $supplier)],
        };
    }

    /**
     * One demo item; deterministic so tests can check it.
     *
     * code "<class>-<index>", brand = the supplier's brand (or "demo"),
     * price = number * 10 + index + 0.99, quantity = index * 5.
     *
     * @return array{code: string, brand: string, name: string, price: float, quantity: int, supplier: string}
     */
    public static function item(string $class, int $number, int $index, string $brand): array
    {
        return [
            'code' => "$class-$index",
            'brand' => $brand === '' ? 'demo' : $brand,
            'name' => "Demo part $index from $class",
            'price' => $number * 10 + $index + 0.99,
            'quantity' => $index * 5,
            'supplier' => $class,
        ];
    }

    /**
     * The supplier classes answered for a request code.
     *
     * @return string[]
     */
    public static function supplierClasses(string $code): array
    {
        if ($code === 'sessionTimeout') {
            $classes = ['normal-1'];
            for ($n = 2; $n <= self::SESSION_TIMEOUT_SUPPLIERS + 1; $n++) {
                $classes[] = "timeout-$n";
            }
            return $classes;
        }
        return self::SUPPLIERS[$code] ?? self::SUPPLIERS['normal'];
    }

    /**
     * Split a class like "analog-3" into ["analog", 3]; without a "-N" suffix
     * the number is 0.
     *
     * @return array{0: string, 1: int}
     */
    public static function splitClass(string $class): array
    {
        if (preg_match('/^(.*)-(\d+)$/', $class, $m) === 1) {
            return [$m[1], (int)$m[2]];
        }
        return [$class, 0];
    }

    /**
     * One supplier element, the input of an items call.
     *
     * @return mixed[]
     */
    private static function supplier(string $class, string $code, string $brand, string $analog, array $info = []): array
    {
        return [
            'class' => $class,
            'params' => ['login' => 'demo', 'password' => 'demo'],
            'code' => $code,
            'brand' => $brand,
            'analog' => $analog,
            'info' => ['supplier' => $class, 'title' => "Demo supplier $class"] + $info,
        ];
    }

    /**
     * Items 1..3 of a supplier.
     *
     * @param mixed[] $supplier
     * @return array<int, array<string, mixed>>
     */
    private static function makeItems(string $class, int $number, array $supplier): array
    {
        $items = [];
        for ($index = 1; $index <= self::ITEMS_PER_SUPPLIER; $index++) {
            $items[] = self::item($class, $number, $index, self::field($supplier, 'brand'));
        }
        return $items;
    }

    /**
     * The two analogs an analog-N supplier points to: normal-N1 and normal-N2.
     *
     * @param mixed[] $supplier
     * @return array<int, array<string, mixed>>
     */
    private static function nestedSuppliers(string $class, int $number, array $supplier): array
    {
        $nested = [];
        foreach ([1, 2] as $n) {
            $nested[] = self::supplier(
                "normal-$number$n",
                self::field($supplier, 'code'),
                self::field($supplier, 'brand'),
                self::field($supplier, 'analog'),
                ['parent' => $class],
            );
        }
        return $nested;
    }

    /**
     * A scalar field as a string, from the top level or else from `params`.
     *
     * @param mixed[] $data
     */
    private static function field(array $data, string $name): string
    {
        $value = $data[$name] ?? (is_array($data['params'] ?? null) ? ($data['params'][$name] ?? null) : null);
        if (is_bool($value)) {
            return $value ? '1' : '0';
        }
        return is_scalar($value) ? (string)$value : '';
    }

    /** Wait a random 0..DEMO_DELAY_MS ms; the env var is read on every call. */
    private static function delay(): void
    {
        $max = getenv('DEMO_DELAY_MS');
        $max = ($max === false || !is_numeric($max)) ? self::DEFAULT_DELAY_MS : (int)$max;
        if ($max > 0) {
            self::sleepFor(random_int(0, $max) / 1000);
        }
    }

    /**
     * Wait $seconds for real. sleep() and usleep() return early when a signal
     * arrives (the aggregator sends SIGUSR1 for a backtrace of a slow job and
     * the job goes on), so wait again for what is left.
     */
    private static function sleepFor(float $seconds): void
    {
        $end = hrtime(true) + (int)($seconds * 1e9);
        while (($left = $end - hrtime(true)) > 0) {
            usleep(intdiv(min($left, 1_000_000_000) + 999, 1000));
        }
    }
}

<?php

/**
 * Bench translators for aggbench's real-latency runs (`make bench`, parts
 * latency and inflight): a supplier with real latency, called the two ways
 * a translator can.
 *
 *   BENCH_SUPPLIER  the fake supplier's base URL (aggbench serves it)
 *   BENCH_CALL      "fetch": \Aggregator\fetch() (the job waits without
 *                   holding the worker); "sync": file_get_contents() (the
 *                   worker waits)
 *
 * suppliers: answers at once with 3 suppliers, like `normal` (or N for a
 * code "calls-N"). items: one call to the supplier, its answer mapped to
 * items: 3 per supplier, like `normal`.
 */

declare(strict_types=1);

$base = (string)getenv('BENCH_SUPPLIER');
$sync = getenv('BENCH_CALL') === 'sync';

return [
    'suppliers' => static function (array $request): array {
        $code = (string)($request['code'] ?? 'normal');
        $n = preg_match('/^calls-(\d+)$/', $code, $m) === 1 ? (int)$m[1] : 3;
        $suppliers = [];
        for ($i = 1; $i <= $n; $i++) {
            $suppliers[] = ['class' => "bench-$i", 'code' => $code, 'brand' => (string)($request['brand'] ?? ''),
                'info' => ['supplier' => "bench-$i"]];
        }
        return ['suppliers' => $suppliers];
    },
    'items' => static function (array $supplier) use ($base, $sync): array {
        $url = $base . '/search?code=' . rawurlencode((string)$supplier['code']) . '&supplier=' . rawurlencode((string)$supplier['class']);
        if ($sync) {
            $body = file_get_contents($url);
            if ($body === false) {
                throw new \RuntimeException("no answer from $url");
            }
            $answer = json_decode($body, true, 512, JSON_THROW_ON_ERROR);
        } else {
            $answer = \Aggregator\fetch($url)->json();
        }
        $items = [];
        foreach ($answer['parts'] as $part) {
            $items[] = ['code' => $part['number'], 'brand' => $part['maker'], 'name' => $part['title'],
                'price' => $part['price'], 'quantity' => $part['stock'], 'supplier' => $supplier['class']];
        }
        return ['items' => $items];
    },
];

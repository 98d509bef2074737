<?php

/**
 * Handlers for searches through \Aggregator\fetch(): the suppliers handler
 * names "count" suppliers (the request's code, default 3); each items
 * handler calls FETCH_URL (env) with its class and answers one item per
 * line of the supplier's body.
 */

declare(strict_types=1);

return [
    'suppliers' => static function (array $request): array {
        $count = ctype_digit((string)($request['code'] ?? '')) ? (int)$request['code'] : 3;
        $suppliers = [];
        for ($i = 1; $i <= $count; $i++) {
            $suppliers[] = ['class' => "remote-$i", 'info' => ['supplier' => "remote-$i"]];
        }
        return ['suppliers' => $suppliers];
    },
    'items' => static function (array $supplier): array {
        $response = \Aggregator\fetch(getenv('FETCH_URL') . '?class=' . urlencode((string)$supplier['class']));
        $items = [];
        foreach (array_filter(explode("\n", $response->body)) as $i => $line) {
            $items[] = ['code' => "$supplier[class]-$i", 'brand' => 'remote', 'name' => $line, 'price' => 1.5, 'quantity' => $response->status];
        }
        return ['items' => $items];
    },
];

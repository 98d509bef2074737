<?php

/**
 * Handlers written for PHP's own http:// wrapper, unchanged: each items
 * handler reads FETCH_URL (env) with file_get_contents() and a stream
 * context, and answers one item per line. In worker mode the aggregator's
 * wrapper makes that a fetch() call (SPEC §17). The suppliers handler names
 * "count" suppliers (the request's code, default 3).
 */

declare(strict_types=1);

return [
    'suppliers' => static function (array $request): array {
        $count = ctype_digit((string)($request['code'] ?? '')) ? (int)$request['code'] : 3;
        $suppliers = [];
        for ($i = 1; $i <= $count; $i++) {
            $suppliers[] = ['class' => "legacy-$i", 'info' => ['supplier' => "legacy-$i"]];
        }
        return ['suppliers' => $suppliers];
    },
    'items' => static function (array $supplier): array {
        $context = stream_context_create(['http' => [
            'method' => 'GET',
            'header' => "X-Api-Key: k-legacy\r\nAccept: text/plain\r\n",
            'timeout' => 10,
        ]]);
        $body = file_get_contents(getenv('FETCH_URL') . '?class=' . urlencode((string)$supplier['class']), false, $context);
        if ($body === false) {
            throw new RuntimeException('supplier down: ' . (error_get_last()['message'] ?? '?'));
        }
        $items = [];
        foreach (array_filter(explode("\n", $body)) as $i => $line) {
            $items[] = ['code' => "$supplier[class]-$i", 'brand' => 'legacy', 'name' => $line, 'price' => 1.5, 'quantity' => 1];
        }
        return ['items' => $items];
    },
];

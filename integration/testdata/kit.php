<?php

/**
 * Handlers for the integration tests of messages that say what to do
 * (integration/messages_test.go), in worker mode as a handlers file and in
 * exec mode through kit_exec.php.
 *
 *   request code "http://…"  one supplier fetch-1 whose items handler calls
 *                            that URL with \Aggregator\fetch() (a slow one
 *                            makes the job time out while it waits)
 *   request code "hog"       one supplier hog-1 whose items handler
 *                            allocates until memory_limit stops it
 */

declare(strict_types=1);

return [
    'suppliers' => static function (array $request): array {
        $code = (string)($request['code'] ?? '');
        $class = str_starts_with($code, 'http') ? 'fetch-1' : 'hog-1';
        return ['suppliers' => [['class' => $class, 'url' => $code, 'info' => ['supplier' => $class]]]];
    },
    'items' => static function (array $supplier): array {
        if (($supplier['class'] ?? '') === 'hog-1') {
            $kept = [];
            while (true) {
                $kept[] = str_repeat('m', 1 << 20);
            }
        }
        $answer = \Aggregator\fetch((string)$supplier['url'])->json();
        return ['items' => $answer['items'] ?? []];
    },
];

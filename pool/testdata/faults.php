<?php

/**
 * Test handlers for fault injection: the suppliers handler misbehaves as the
 * request's "code" says; every supplier it names gets one plain item.
 *   noisy    writes 5 MB to stdout (must land in the log, not the stream)
 *   badutf8  answers JSON holding invalid UTF-8
 *   memory   allocates past memory_limit (a fatal error)
 *   fork     starts a child process, then sleeps past the task time
 *   big      answers 20 MB (past aggregator.limit.output-size)
 *   other    answers one supplier, "plain"
 */

declare(strict_types=1);

$suppliers = static function (array $request): array|string {
    switch ($request['code'] ?? '') {
        case 'noisy':
            for ($i = 0; $i < 80; $i++) {
                echo str_repeat('n', 64 * 1024 - 1), "\n";
            }
            break;
        case 'badutf8':
            return "{\"suppliers\":[{\"class\":\"plain\",\"info\":{\"s\":\"bad \xff\xfe here\"}}]}";
        case 'memory':
            $hog = [];
            while (true) {
                $hog[] = str_repeat('m', 1 << 20);
            }
        case 'fork':
            $child = proc_open(['sleep', '300'], [], $pipes);
            fwrite(STDERR, 'child pid ' . proc_get_status($child)['pid'] . "\n");
            sleep(60);
            break;
        case 'big':
            return str_repeat('x', 20 << 20);
    }
    return ['suppliers' => [['class' => 'plain', 'info' => ['supplier' => 'plain']]]];
};

$items = static function (array $supplier): array {
    return ['items' => [[
        'code' => 'p-1', 'brand' => 'b', 'name' => 'plain part', 'price' => 1.5, 'quantity' => 1,
        'supplier' => $supplier['class'] ?? '',
    ]]];
};

return ['suppliers' => $suppliers, 'items' => $items];

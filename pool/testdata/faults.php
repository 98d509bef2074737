<?php

/**
 * Test handlers for fault injection: the suppliers handler misbehaves as the
 * request's "code" says; every supplier it names gets one plain item.
 *   noisy    writes 5 MB to stdout (must land in the log, not the stream)
 *   badutf8  answers JSON holding invalid UTF-8
 *   memory   allocates past memory_limit (a fatal error)
 *   fork     starts a child process, then sleeps past the task time
 *   big      answers 20 MB (past aggregator.limit.output-size)
 *   flood    names 200 "flood" suppliers of 1000 items each (~50 MB of
 *            messages: more than any kernel socket buffers can hold)
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
        case 'flood':
            return ['suppliers' => array_fill(0, 200, ['class' => 'flood', 'info' => ['supplier' => 'flood']])];
    }
    return ['suppliers' => [['class' => 'plain', 'info' => ['supplier' => 'plain']]]];
};

$items = static function (array $supplier): array {
    if (($supplier['class'] ?? '') === 'flood') {
        $item = ['code' => 'f-1', 'brand' => 'b', 'name' => str_repeat('f', 200), 'price' => 1.5, 'quantity' => 1];
        return ['items' => array_fill(0, 1000, $item)];
    }
    return ['items' => [[
        'code' => 'p-1', 'brand' => 'b', 'name' => 'plain part', 'price' => 1.5, 'quantity' => 1,
        'supplier' => $supplier['class'] ?? '',
    ]]];
};

return ['suppliers' => $suppliers, 'items' => $items];

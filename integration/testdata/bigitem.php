<?php

/**
 * Test handlers for the send queue and the copies of big answers: every
 * search names one supplier, "big", whose answer is a single item with a
 * name of BIG_ITEM_MB megabytes (default 15, under the default
 * aggregator.limit.output-size of 16 MB).
 */

declare(strict_types=1);

$suppliers = static fn (array $request): array => ['suppliers' => [['class' => 'big', 'info' => ['supplier' => 'big']]]];

$items = static function (array $supplier): array {
    $mb = (float) (getenv('BIG_ITEM_MB') ?: 15);
    return ['items' => [['code' => 'big-1', 'brand' => 'b', 'name' => str_repeat('x', (int) ($mb * (1 << 20)))]]];
};

return ['suppliers' => $suppliers, 'items' => $items];

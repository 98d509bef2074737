<?php

/**
 * Test handlers: a counter shared by all jobs, incremented by each and
 * answered as {"count": N}. The reset hook sets it back to 0 after every
 * job, so the answer is always {"count":1}.
 */

declare(strict_types=1);

$count = 0;

return [
    'suppliers' => static function (array $input) use (&$count): array {
        return ['count' => ++$count];
    },
    'items' => static function (array $input) use (&$count): array {
        return ['count' => ++$count];
    },
    'reset' => static function () use (&$count): void {
        $count = 0;
    },
];

<?php

/**
 * Test handlers: each job allocates {"mb": N} megabytes and keeps them for
 * the life of the worker, so memory grows from job to job. Answers {"items":[]}.
 * Past memory_limit the job dies with "Allowed memory size exhausted".
 */

declare(strict_types=1);

$handler = static function (array $input): array {
    static $kept = [];
    $megabytes = (int)($input['mb'] ?? 0);
    for ($i = 0; $i < $megabytes; $i++) {
        $kept[] = str_repeat('m', 1 << 20);
    }
    return ['items' => []];
};

return ['suppliers' => $handler, 'items' => $handler];

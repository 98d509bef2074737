<?php

/**
 * Test handlers: with {"crash": true} the process exits with code 3 in the
 * middle of the job, with {"exit": N} with code N; otherwise an echo.
 */

declare(strict_types=1);

$handler = static function (array $input): array {
    if (!empty($input['crash'])) {
        exit(3);
    }
    if (isset($input['exit'])) {
        exit((int)$input['exit']);
    }
    return $input;
};

return ['suppliers' => $handler, 'items' => $handler];

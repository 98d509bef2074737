<?php

/**
 * Test handlers: each job echoes "stray output\n" to stdout and writes
 * "stray error\n" to stderr, then answers its input. The result frame on
 * fd 4 must be unaffected.
 */

declare(strict_types=1);

$handler = static function (array $input): array {
    echo "stray output\n";
    fwrite(STDERR, "stray error\n");
    return $input;
};

return ['suppliers' => $handler, 'items' => $handler];

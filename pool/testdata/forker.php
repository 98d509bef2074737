<?php

/**
 * Test handlers: each job starts a background `sleep 300` that shares the
 * worker's stdout and stderr (as `exec('cmd &')` would), writes its pid to
 * stderr ("child pid N") and answers {"child": N} at once. Whatever ends
 * the worker must end the child too, and must not wait for it.
 */

declare(strict_types=1);

$handler = static function (array $input): array {
    static $children = [];
    $child = proc_open(['sleep', '300'], [0 => ['file', '/dev/null', 'r'], 1 => STDOUT, 2 => STDERR], $pipes);
    $children[] = $child;
    $pid = proc_get_status($child)['pid'];
    fwrite(STDERR, "child pid $pid\n");
    return ['child' => $pid];
};

return ['suppliers' => $handler, 'items' => $handler];

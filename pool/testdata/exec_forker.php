<?php

/**
 * Exec-mode test script: starts a background `sleep 300` holding this
 * script's stdout, prints its pid as the answer and exits 0. The answer is
 * complete when the script exits, though the child keeps stdout open.
 */

declare(strict_types=1);

stream_get_contents(STDIN);
$child = proc_open(['sleep', '300'], [0 => ['file', '/dev/null', 'r'], 1 => STDOUT, 2 => STDERR], $pipes);
echo json_encode(['suppliers' => [], 'child' => proc_get_status($child)['pid']]), "\n";
exit(0);

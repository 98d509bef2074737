<?php

/**
 * Test handlers: sleep {"sleep": seconds} (fractions allowed), then answer the input.
 *
 * With {"fork": true} the job first starts a child process `sleep 300` (via
 * proc_open, no shell) and adds its pid to the answer as "child_pid"; because
 * the answer only comes after the sleep, the pid is also written to stderr as
 * "child pid N" and, when {"pidfile": "/path"} is given, into that file.
 * The child is not waited for: it shows whether killing a worker also kills
 * the processes it started.
 *
 * With {"startfile": "/path"} the job writes that file as it begins: a test
 * then knows the job is in PHP, not still on its way there.
 */

declare(strict_types=1);

/** Start `sleep 300` in the background and return its pid. */
function start_sleeping_child(): int
{
    static $children = []; // keeps the process handles (and so the children) alive
    $devnull = ['file', '/dev/null', 'r'];
    $process = proc_open(['sleep', '300'], [0 => $devnull, 1 => ['file', '/dev/null', 'w'], 2 => ['file', '/dev/null', 'w']], $pipes);
    if ($process === false) {
        throw new RuntimeException('proc_open(sleep 300) failed');
    }
    $children[] = $process;
    return proc_get_status($process)['pid'];
}

$handler = static function (array $input): array {
    if (isset($input['startfile'])) {
        file_put_contents((string)$input['startfile'], "started\n");
    }
    if (!empty($input['fork'])) {
        $pid = start_sleeping_child();
        $input['child_pid'] = $pid;
        fwrite(STDERR, "child pid $pid\n");
        if (isset($input['pidfile'])) {
            file_put_contents((string)$input['pidfile'], "$pid\n");
        }
    }
    $seconds = (float)($input['sleep'] ?? 0);
    if ($seconds > 0) {
        usleep((int)round($seconds * 1_000_000));
    }
    return $input;
};

return ['suppliers' => $handler, 'items' => $handler];

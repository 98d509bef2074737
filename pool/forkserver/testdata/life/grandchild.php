<?php
// Starts `sleep 60` (no shell) in its own process group, prints its pid,
// then exits or waits (the first argument).
$p = proc_open(['sleep', '60'], [0 => ['file', '/dev/null', 'r'], 1 => ['file', '/dev/null', 'w'], 2 => ['file', '/dev/null', 'w']], $pipes);
echo proc_get_status($p)['pid'], "\n";
if (($argv[1] ?? 'exit') === 'wait') {
    sleep(60);
}

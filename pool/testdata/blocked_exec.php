<?php

/**
 * Exec-mode twin of blocked.php: reads its input, then blocks in fread on a
 * pipe from `sleep 100`, where PHP's SIGUSR1 handler cannot run, so no
 * backtrace comes; the aggregator must still kill it on time.
 */

$in = json_decode((string)fgets(STDIN), true);
$pipe = popen('sleep 100', 'r');
$in['read'] = (string)fread($pipe, 10);
echo json_encode($in), "\n";

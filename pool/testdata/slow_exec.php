<?php

/**
 * Exec-mode test script, written like a script of the first implementation
 * (knows nothing of the aggregator's backtrace support): reads one JSON line
 * from stdin, waits {"seconds": N} in wait_for_supplier(), prints the input.
 * The aggregator's prepend file (src/backtrace_prepend.php) is what makes it
 * answer SIGUSR1 with a backtrace naming this file and wait_for_supplier.
 */

function wait_for_supplier($seconds)
{
    $end = hrtime(true) + (int)($seconds * 1e9); // monotonic, like the Go side's clock
    while (hrtime(true) < $end) {
        usleep(10000);
    }
}

$in = json_decode(fgets(STDIN), true);
wait_for_supplier(isset($in['seconds']) ? (float)$in['seconds'] : 0);
echo json_encode($in), "\n";

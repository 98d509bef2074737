<?php

/**
 * Test handlers for the slowlog and the timeout backtrace: the job waits
 * {"seconds": N} (fractions allowed) in wait_for_supplier(), defined here, so
 * a backtrace of it names this file and that function; then it answers the
 * input. Waits in steps of 10 ms until the time has passed, so the backtrace
 * signal (which cuts a usleep short) does not shorten it.
 */

declare(strict_types=1);

function wait_for_supplier(float $seconds): void
{
    $end = hrtime(true) + (int)($seconds * 1e9); // monotonic, like the Go side's clock
    while (hrtime(true) < $end) {
        usleep(10000);
    }
}

$handler = static function (array $in): array {
    wait_for_supplier((float)($in['seconds'] ?? 0));
    return $in;
};

return ['suppliers' => $handler, 'items' => $handler];

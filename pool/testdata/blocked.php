<?php

/**
 * Test handlers: the job blocks in one C call that does not return on a
 * signal — fread on a pipe from `sleep 100` (the read is restarted after the
 * signal, SA_RESTART) — so PHP's SIGUSR1 handler cannot run until it returns
 * and no backtrace comes. The aggregator must still kill the job on time.
 */

declare(strict_types=1);

function wait_in_c_call(): string
{
    $pipe = popen('sleep 100', 'r');
    $data = (string)fread($pipe, 10); // blocks until sleep exits
    pclose($pipe);
    return $data;
}

$handler = static function (array $in): array {
    $in['read'] = wait_in_c_call();
    return $in;
};

return ['suppliers' => $handler, 'items' => $handler];

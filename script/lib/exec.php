<?php

declare(strict_types=1);

namespace Aggregator\Exec;

/**
 * The exec adapter's former home: \Aggregator\ExecScript::run() is the
 * adapter now (loaded by the prepend file or composer's autoload); this
 * function stays for scripts that still call it.
 *
 * @param callable(array): (array|string) $handler
 */
function run(callable $handler): int
{
    if (!class_exists(\Aggregator\ExecScript::class)) {
        require_once __DIR__ . '/../../src/autoload.php'; // run by hand, without the aggregator's prepend file
    }
    return \Aggregator\ExecScript::run($handler);
}

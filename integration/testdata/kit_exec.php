<?php

/**
 * kit.php's handlers as an exec script: php kit_exec.php suppliers|items.
 * No require: the aggregator's prepend file loads the kit.
 */

declare(strict_types=1);

$handlers = require __DIR__ . '/kit.php';
exit(\Aggregator\ExecScript::run($handlers[$argv[1] ?? 'items']));

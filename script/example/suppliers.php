<?php

/**
 * Exec-mode suppliers script of the example translator (see items.php).
 */

declare(strict_types=1);

// The autoloader (composer's when installed). Under the aggregator the
// prepend file has loaded it already; this line is for running by hand.
require_once __DIR__ . '/../../src/autoload.php';

$handlers = require __DIR__ . '/handlers.php';
exit(\Aggregator\ExecScript::run($handlers['suppliers']));

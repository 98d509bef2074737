<?php

/**
 * Exec-mode items script of the example translator: the same handler as in
 * worker mode, through the exec adapter (JSON on stdin, JSON on stdout).
 *
 *   bin/aggregator -Daggregator.pool.mode=exec \
 *     "-Daggregator.script.items=php -d display_errors=stderr script/example/items.php" \
 *     "-Daggregator.script.suppliers=php -d display_errors=stderr script/example/suppliers.php"
 */

declare(strict_types=1);

// The autoloader (composer's when installed). Under the aggregator the
// prepend file has loaded it already; this line is for running by hand.
require_once __DIR__ . '/../../src/autoload.php';

$handlers = require __DIR__ . '/handlers.php';
exit(\Aggregator\ExecScript::run($handlers['items']));

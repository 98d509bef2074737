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

require __DIR__ . '/../lib/exec.php';

$handlers = require __DIR__ . '/handlers.php';
exit(\Aggregator\Exec\run($handlers['items']));

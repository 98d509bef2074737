<?php

/**
 * The shop bench's translators as exec-mode scripts (one `php` per call),
 * for the exec rows of aggbench's shop part:
 *
 *   aggregator.script.suppliers = php -d display_errors=stderr cmd/aggbench/testdata/shop-exec.php suppliers
 *   aggregator.script.items     = php -d display_errors=stderr cmd/aggbench/testdata/shop-exec.php items
 *
 * The same handlers as worker mode (shop.php), through the exec adapter.
 */

declare(strict_types=1);

$handlers = require __DIR__ . '/shop.php';
$kind = $argv[1] ?? '';
if (!isset($handlers[$kind])) {
    fwrite(STDERR, "usage: php shop-exec.php suppliers|items < job.json\n");
    exit(2);
}
exit(\Aggregator\ExecScript::run($handlers[$kind]));

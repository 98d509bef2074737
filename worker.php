#!/usr/bin/env php
<?php

/**
 * Aggregator PHP worker — the entry point.
 *
 * Started by the aggregator as
 *     php -d display_errors=stderr -d memory_limit=64M worker.php script/handlers.php
 * with fd 3 (jobs in) and fd 4 (results out) as pipes; see docs/PROTOCOL.md.
 * The handlers file may also be given in the env var AGGREGATOR_HANDLERS.
 */

declare(strict_types=1);

// Composer's autoloader when installed (the bin proxy vendor/bin/worker.php
// names it), so the project's own classes load; else the kit's rules.
require_once __DIR__ . '/src/autoload.php';

exit(\Aggregator\Worker::main($_SERVER['argv'] ?? [], __DIR__));

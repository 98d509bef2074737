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

(static function (): void {
    // Installed through composer: use its autoloader (the bin proxy tells where it is).
    $autoloaders = [$GLOBALS['_composer_autoload_path'] ?? null, __DIR__ . '/vendor/autoload.php'];
    foreach ($autoloaders as $autoload) {
        if ($autoload !== null && is_file($autoload)) {
            require_once $autoload;
            return;
        }
    }
    // Otherwise load the kit from src/ beside this file.
    require_once __DIR__ . '/src/autoload.php';
})();

exit(\Aggregator\Worker::main($_SERVER['argv'] ?? [], __DIR__));

<?php

/**
 * Loads the kit without composer: Aggregator\X from src/X.php on first use
 * (what composer's PSR-4 rule does), and the functions (fetch(), fetchAll()),
 * which do not autoload. worker.php, the exec prepend file and the demo
 * scripts use it when composer's autoloader is not there.
 */

spl_autoload_register(static function (string $class): void {
    if (str_starts_with($class, 'Aggregator\\')) {
        $file = __DIR__ . '/' . str_replace('\\', '/', substr($class, strlen('Aggregator\\'))) . '.php';
        if (is_file($file)) {
            require_once $file;
        }
    }
});
require_once __DIR__ . '/functions.php';

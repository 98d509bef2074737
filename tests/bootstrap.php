<?php

/**
 * PHPUnit bootstrap (phpunit.xml.dist): the ROOT constant the tests use for
 * paths, and autoloading of Aggregator\ from src/ and of the test helpers,
 * Aggregator\Tests\, from tests/lib/.
 */

declare(strict_types=1);

const ROOT = __DIR__ . '/..';

spl_autoload_register(static function (string $class): void {
    // The more specific prefix first: Aggregator\Tests\X is tests/lib/X.php.
    foreach (['Aggregator\\Tests\\' => ROOT . '/tests/lib/', 'Aggregator\\' => ROOT . '/src/'] as $prefix => $dir) {
        if (str_starts_with($class, $prefix)) {
            $file = $dir . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
            if (is_file($file)) {
                require_once $file;
            }
            return;
        }
    }
});
require_once ROOT . '/src/functions.php'; // \Aggregator\fetch() and fetchAll(): functions do not autoload

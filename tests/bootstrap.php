<?php

/**
 * PHPUnit bootstrap (phpunit.xml.dist): the ROOT constant the tests use for
 * paths, and the autoloader: composer.json's rules, so Aggregator\ loads
 * from src/, the demo and the example from script/, and the test helpers,
 * Aggregator\Tests\, from tests/lib/ (autoload-dev), with or without
 * `composer install`.
 */

declare(strict_types=1);

const ROOT = __DIR__ . '/..';

require_once ROOT . '/src/autoload.php';

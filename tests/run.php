<?php

/**
 * Runs every tests/*Test.php file. Each such file returns an array of
 * test name => callable; a test passes when it returns and fails when it throws.
 *
 *   php tests/run.php
 *
 * The last line is "N passed, N failed"; the exit code is 1 when anything failed.
 */

declare(strict_types=1);

const ROOT = __DIR__ . '/..';

spl_autoload_register(static function (string $class): void {
    $prefix = 'Aggregator\\';
    if (str_starts_with($class, $prefix)) {
        $file = ROOT . '/src/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
        if (is_file($file)) {
            require_once $file;
        }
    }
});
foreach (glob(__DIR__ . '/lib/*.php') ?: [] as $file) {
    require_once $file;
}

$passed = 0;
$failed = 0;
$files = glob(__DIR__ . '/*Test.php') ?: [];
sort($files);
foreach ($files as $file) {
    $suite = basename($file, '.php');
    try {
        $tests = require $file;
    } catch (\Throwable $e) {
        $failed++;
        echo "FAIL $suite (does not load): ", get_class($e), ': ', $e->getMessage(), "\n";
        continue;
    }
    foreach ($tests as $name => $test) {
        try {
            $test();
            $passed++;
            echo "ok   $suite: $name\n";
        } catch (\Throwable $e) {
            $failed++;
            echo "FAIL $suite: $name\n     ", get_class($e), ': ', $e->getMessage(), "\n     at ", $e->getFile(), ':', $e->getLine(), "\n";
        }
    }
}

echo "$passed passed, $failed failed\n";
exit($failed === 0 ? 0 : 1);

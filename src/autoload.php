<?php

/**
 * The kit's autoloader, with composer or without. worker.php, the exec
 * prepend file (src/prepend.php) and scripts run by hand load it; handlers
 * and exec scripts then need no require of their own.
 *
 * 1. Composer's autoloader, when there is one, so that a project's own
 *    classes load too: the one the bin proxy vendor/bin/worker.php names,
 *    else the project's vendor/autoload.php when this package is installed
 *    in vendor/aggregator/worker/, else this checkout's own vendor/.
 * 2. Always, behind it: Aggregator\ from src/ and the PSR-4 rules and
 *    files of this package's composer.json ("autoload" and "autoload-dev"),
 *    registered by hand. A
 *    checkout or a release tarball without vendor/ loads Aggregator\ from
 *    src/ and the demo's Aggregator\Demo\ from script/lib/ this way, by the
 *    same rules composer would use.
 */

// The kit uses PHP 8.2 (readonly classes): on an older PHP say so, instead
// of a parse error in whichever class loads first.
if (PHP_VERSION_ID < 80200) {
    fwrite(STDERR, 'the Aggregator PHP kit needs PHP 8.2 or later; this is PHP ' . PHP_VERSION . ' (' . PHP_BINARY . ")\n");
    exit(1);
}

(static function (): void {
    $root = dirname(__DIR__);
    $vendorAbove = dirname($root, 2); // <project>/vendor when installed as vendor/aggregator/worker
    $candidates = [
        $GLOBALS['_composer_autoload_path'] ?? null,
        is_dir("$vendorAbove/composer") ? "$vendorAbove/autoload.php" : null,
        "$root/vendor/autoload.php",
    ];
    foreach ($candidates as $autoload) {
        if ($autoload !== null && is_file($autoload)) {
            require_once $autoload;
            break;
        }
    }

    // The kit's own rule holds even without composer.json beside it.
    $prefixes = [['Aggregator\\', __DIR__ . '/']];
    $files = [__DIR__ . '/functions.php'];
    $composer = is_file("$root/composer.json") ? json_decode((string)file_get_contents("$root/composer.json"), true) : [];
    foreach (['autoload', 'autoload-dev'] as $section) {
        foreach ((array)($composer[$section]['psr-4'] ?? []) as $prefix => $dirs) {
            foreach ((array)$dirs as $dir) {
                $prefixes[] = [(string)$prefix, $root . '/' . rtrim((string)$dir, '/') . '/'];
            }
        }
    }
    // The longest prefix first: Aggregator\Demo\X is script/lib/X.php, not src/Demo/X.php.
    usort($prefixes, static fn (array $a, array $b): int => strlen($b[0]) <=> strlen($a[0]));
    spl_autoload_register(static function (string $class) use ($prefixes): void {
        foreach ($prefixes as [$prefix, $dir]) {
            if (str_starts_with($class, $prefix)) {
                $file = $dir . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
                if (is_file($file)) {
                    require_once $file;
                    return;
                }
            }
        }
    });
    foreach ((array)($composer['autoload']['files'] ?? []) as $file) {
        $files[] = "$root/$file";
    }
    foreach ($files as $file) {
        require_once $file;
    }
})();

<?php

/**
 * Handlers for the deploy tests (integration/deploy_test.go). A request's
 * code "wait-MS" names 3 suppliers whose items each take MS milliseconds
 * (so a search can span a drain); each answers 3 items. Every item says
 * which release served it (the RELEASE file in the working directory, the
 * release's root) and which server process (the worker's parent), so the
 * test sees where each search ran.
 */

declare(strict_types=1);

$release = is_file('RELEASE') ? trim((string)file_get_contents('RELEASE')) : '';
$server = posix_getppid();

return [
    'suppliers' => static function (array $request): array {
        $ms = preg_match('/^wait-(\d+)$/', (string)($request['code'] ?? ''), $m) === 1 ? (int)$m[1] : 0;
        $suppliers = [];
        for ($i = 1; $i <= 3; $i++) {
            $suppliers[] = ['class' => "wait-$i", 'ms' => $ms, 'info' => ['supplier' => "wait-$i"]];
        }
        return ['suppliers' => $suppliers];
    },
    'items' => static function (array $supplier) use ($release, $server): array {
        // usleep() returns early on a signal (SIGUSR1 asks for a backtrace): wait out the rest.
        $end = hrtime(true) + (int)$supplier['ms'] * 1_000_000;
        while (($left = $end - hrtime(true)) > 0) {
            usleep(intdiv($left, 1000) + 1);
        }
        $items = [];
        for ($i = 1; $i <= 3; $i++) {
            $items[] = ['code' => "$supplier[class]-$i", 'release' => $release, 'server' => $server];
        }
        return ['items' => $items];
    },
];

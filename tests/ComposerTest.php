<?php

declare(strict_types=1);

use Aggregator\Frame;
use Aggregator\Handlers;
use Aggregator\Tests\Assert;
use Aggregator\Tests\WorkerProcess;

/**
 * composer.json: valid, and a PHP project can require this package through a
 * path repository and run the worker from vendor/bin. Needs composer (make
 * test installs it); no network: packagist is turned off.
 */

function composer_binary(): ?string
{
    foreach (explode(PATH_SEPARATOR, (string)getenv('PATH')) as $dir) {
        if ($dir !== '' && is_file("$dir/composer") && is_executable("$dir/composer")) {
            return "$dir/composer";
        }
    }
    return null;
}

/**
 * Run composer with $args in $cwd, with its home in $home.
 *
 * @param string[] $args
 * @return array{0: int, 1: string} exit code, stdout and stderr
 */
function composer_run(array $args, string $cwd, string $home): array
{
    $out = (string)tempnam(sys_get_temp_dir(), 'comp');
    $process = proc_open(
        [(string)composer_binary(), ...$args],
        [0 => ['file', '/dev/null', 'r'], 1 => ['file', $out, 'w'], 2 => ['file', $out, 'a']],
        $pipes,
        $cwd,
        ['COMPOSER_HOME' => $home, 'COMPOSER_NO_INTERACTION' => '1', 'COMPOSER_ALLOW_SUPERUSER' => '1'] + getenv(),
    );
    $code = proc_close($process);
    $output = (string)file_get_contents($out);
    unlink($out);
    return [$code, $output];
}

function composer_remove_tree(string $dir): void
{
    if (!is_dir($dir) || is_link($dir)) {
        @unlink($dir);
        return;
    }
    foreach (scandir($dir) ?: [] as $name) {
        if ($name !== '.' && $name !== '..') {
            composer_remove_tree("$dir/$name");
        }
    }
    rmdir($dir);
}

if (composer_binary() === null) {
    return [
        'SKIPPED: composer is not installed (make test installs it; apt-get install composer)' => static function (): void {
        },
    ];
}

return [
    'composer validate passes' => function (): void {
        $home = sys_get_temp_dir() . '/composer-home-' . getmypid();
        try {
            [$code, $output] = composer_run(['validate', '--strict'], ROOT, $home);
            Assert::same(0, $code, "composer validate: $output");
            Assert::contains('is valid', $output);
        } finally {
            composer_remove_tree($home);
        }
    },
    'a project requires the package from a path repository and runs vendor/bin/worker.php' => function (): void {
        $tmp = sys_get_temp_dir() . '/composer-project-' . getmypid();
        composer_remove_tree($tmp);
        mkdir("$tmp/project", 0o755, true);
        try {
            $project = "$tmp/project";
            file_put_contents("$project/composer.json", json_encode([
                'name' => 'shop/translators',
                'repositories' => [
                    ['type' => 'path', 'url' => realpath(ROOT), 'options' => ['symlink' => false, 'versions' => ['aggregator/worker' => '1.0.0']]],
                    ['packagist.org' => false],
                ],
                'require' => ['aggregator/worker' => '*'],
            ], JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES));
            // The project's own handlers, using a class of the package.
            file_put_contents("$project/handlers.php", <<<'PHP'
                <?php
                return [
                    'suppliers' => fn (array $request): array => ['suppliers' => [['class' => 'shop-1', 'code' => $request['code']]]],
                    'items' => fn (array $supplier): array => ['items' => [[
                        'code' => $supplier['code'],
                        'kind' => \Aggregator\Handlers::KIND_ITEMS,
                        'worker' => (new \ReflectionClass(\Aggregator\Worker::class))->getFileName(),
                    ]]],
                ];
                PHP);

            [$code, $output] = composer_run(['install', '--no-interaction', '--no-progress'], $project, "$tmp/home");
            Assert::same(0, $code, "composer install: $output");
            Assert::true(is_file("$project/vendor/bin/worker.php"), "vendor/bin/worker.php exists; composer said: $output");

            $worker = WorkerProcess::start(["$project/vendor/bin/worker.php", 'handlers.php'], $project);
            $worker->handshake();
            $result = $worker->job(Handlers::KIND_SUPPLIERS, '{"code":"3310"}');
            Assert::same(Frame::CODEC_RAW, $result->flags, 'suppliers: ' . $result->payload);
            Assert::same('{"suppliers":[{"class":"shop-1","code":"3310"}]}', $result->payload);
            $result = $worker->job(Handlers::KIND_ITEMS, '{"class":"shop-1","code":"3310"}');
            Assert::same(Frame::CODEC_RAW, $result->flags, 'items: ' . $result->payload);
            $item = json_decode($result->payload, true)['items'][0];
            Assert::same(2, $item['kind']);
            Assert::same(realpath("$project/vendor/aggregator/worker/src/Worker.php"), realpath($item['worker']),
                'the worker runs the installed copy, loaded by composer\'s autoloader');
            $worker->send(new Frame(Frame::CONTROL | Frame::CODEC_JSON, '{"stop":true}'));
            Assert::same(0, $worker->wait(), 'stderr: ' . $worker->stderr());
        } finally {
            composer_remove_tree($tmp);
        }
    },
];

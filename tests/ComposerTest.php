<?php

declare(strict_types=1);

namespace Aggregator\Tests;

use Aggregator\Frame;
use Aggregator\Handlers;
use PHPUnit\Framework\TestCase;

/**
 * composer.json: valid, and a PHP project can require this package through a
 * path repository and run the worker from vendor/bin. Needs composer (make
 * test installs it); no network: packagist is turned off.
 */
final class ComposerTest extends TestCase
{
    protected function setUp(): void
    {
        if (self::composerBinary() === null) {
            self::markTestSkipped('composer is not installed (make test installs it; apt-get install composer)');
        }
    }

    /** @testdox composer validate passes */
    public function testComposerValidatePasses(): void
    {
        $home = sys_get_temp_dir() . '/composer-home-' . getmypid();
        try {
            [$code, $output] = self::composer(['validate', '--strict'], ROOT, $home);
            self::assertSame(0, $code, "composer validate: $output");
            self::assertStringContainsString('is valid', $output);
        } finally {
            self::removeTree($home);
        }
    }

    /** @testdox a project requires the package from a path repository and runs vendor/bin/worker.php */
    public function testAProjectRequiresThePackageAndRunsVendorBinWorker(): void
    {
        $tmp = sys_get_temp_dir() . '/composer-project-' . getmypid();
        self::removeTree($tmp);
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

            [$code, $output] = self::composer(['install', '--no-interaction', '--no-progress'], $project, "$tmp/home");
            self::assertSame(0, $code, "composer install: $output");
            self::assertTrue(is_file("$project/vendor/bin/worker.php"), "vendor/bin/worker.php exists; composer said: $output");

            $worker = WorkerProcess::start(["$project/vendor/bin/worker.php", 'handlers.php'], $project);
            $worker->handshake();
            $result = $worker->job(Handlers::KIND_SUPPLIERS, '{"code":"3310"}');
            self::assertSame(Frame::CODEC_RAW, $result->flags, 'suppliers: ' . $result->payload);
            self::assertSame('{"suppliers":[{"class":"shop-1","code":"3310"}]}', $result->payload);
            $result = $worker->job(Handlers::KIND_ITEMS, '{"class":"shop-1","code":"3310"}');
            self::assertSame(Frame::CODEC_RAW, $result->flags, 'items: ' . $result->payload);
            $item = json_decode($result->payload, true)['items'][0];
            self::assertSame(2, $item['kind']);
            self::assertSame(realpath("$project/vendor/aggregator/worker/src/Worker.php"), realpath($item['worker']),
                'the worker runs the installed copy, loaded by composer\'s autoloader');
            $worker->send(new Frame(Frame::CONTROL | Frame::CODEC_JSON, '{"stop":true}'));
            self::assertSame(0, $worker->wait(), 'stderr: ' . $worker->stderr());
        } finally {
            self::removeTree($tmp);
        }
    }

    private static function composerBinary(): ?string
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
    private static function composer(array $args, string $cwd, string $home): array
    {
        $out = (string)tempnam(sys_get_temp_dir(), 'comp');
        $process = proc_open(
            [(string)self::composerBinary(), ...$args],
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

    private static function removeTree(string $dir): void
    {
        if (!is_dir($dir) || is_link($dir)) {
            @unlink($dir);
            return;
        }
        foreach (scandir($dir) ?: [] as $name) {
            if ($name !== '.' && $name !== '..') {
                self::removeTree("$dir/$name");
            }
        }
        rmdir($dir);
    }
}

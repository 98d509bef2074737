<?php

declare(strict_types=1);

namespace Aggregator\Tests;

use Aggregator\Frame;
use Aggregator\JobKind;
use Aggregator\Testing\Translator;
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
                        'kind' => \Aggregator\JobKind::Items->value,
                        'worker' => (new \ReflectionClass(\Aggregator\Worker::class))->getFileName(),
                    ]]],
                ];
                PHP);

            [$code, $output] = self::composer(['install', '--no-interaction', '--no-progress'], $project, "$tmp/home");
            self::assertSame(0, $code, "composer install: $output");
            self::assertTrue(is_file("$project/vendor/bin/worker.php"), "vendor/bin/worker.php exists; composer said: $output");

            $worker = WorkerProcess::start(["$project/vendor/bin/worker.php", 'handlers.php'], $project);
            $worker->handshake();
            $result = $worker->job(JobKind::Suppliers, '{"code":"3310"}');
            self::assertSame(Frame::CODEC_RAW, $result->flags, 'suppliers: ' . $result->payload);
            self::assertSame('{"suppliers":[{"class":"shop-1","code":"3310"}]}', $result->payload);
            $result = $worker->job(JobKind::Items, '{"class":"shop-1","code":"3310"}');
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

    /**
     * @testdox installing the kit copies the PHP kit only: no Go sources, binary, logs, tests or demo
     */
    public function testInstallingTheKitCopiesThePhpKitOnly(): void
    {
        $tmp = sys_get_temp_dir() . '/composer-contents-' . getmypid();
        self::removeTree($tmp);
        mkdir("$tmp/project", 0o755, true);
        try {
            self::writeJson("$tmp/project/composer.json", self::projectComposerJson([]));
            [$code, $output] = self::composer(['install', '--no-interaction', '--no-progress'], "$tmp/project", "$tmp/home");
            self::assertSame(0, $code, "composer install: $output");
            $kit = "$tmp/project/vendor/aggregator/worker";
            $top = array_values(array_diff(scandir($kit) ?: [], ['.', '..']));
            self::assertSame(['README.md', 'composer.json', 'docs', 'src', 'worker.php'], $top,
                'the top level of the installed kit (.gitattributes export-ignore decides)');
            $bytes = 0;
            foreach (new \RecursiveIteratorIterator(new \RecursiveDirectoryIterator($kit, \FilesystemIterator::SKIP_DOTS)) as $file) {
                $bytes += $file->getSize();
                self::assertStringEndsNotWith('.go', $file->getFilename(), 'no Go source is copied');
            }
            self::assertLessThan(1 << 20, $bytes, 'the installed kit is under 1 MB (it was 18 MB with bin/aggregator)');
            self::assertFileExists("$kit/src/Testing/TranslatorTestCase.php");
        } finally {
            self::removeTree($tmp);
        }
    }

    /**
     * @testdox a translator package autoloads its own namespace in worker mode (vendor/bin/worker.php) and exec mode (the prepend file), with no require
     */
    public function testATranslatorPackageAutoloadsItsNamespaceInBothModes(): void
    {
        $tmp = sys_get_temp_dir() . '/composer-package-' . getmypid();
        self::removeTree($tmp);
        $project = "$tmp/acme-translator";
        mkdir("$project/src", 0o755, true);
        try {
            self::writeJson("$project/composer.json", self::projectComposerJson(['Acme\\Parts\\' => 'src/']));
            file_put_contents("$project/src/Translator.php", <<<'PHP'
                <?php
                declare(strict_types=1);
                namespace Acme\Parts;
                final class Translator
                {
                    public static function suppliers(array $request): array
                    {
                        if (($request['apikey'] ?? '') === '999') {
                            throw new \Aggregator\PublicError('API key 999 may not search');
                        }
                        return ['suppliers' => [['class' => 'acme', 'code' => $request['code']]]];
                    }
                    public static function items(array $supplier): array
                    {
                        return ['items' => [['code' => $supplier['code'], 'from' => self::class]]];
                    }
                }
                PHP);
            file_put_contents("$project/handlers.php", <<<'PHP'
                <?php
                declare(strict_types=1);
                use Acme\Parts\Translator;
                return ['suppliers' => Translator::suppliers(...), 'items' => Translator::items(...)];
                PHP);
            // An exec script without any require: the prepend file loads the project's autoloader.
            file_put_contents("$project/items.php", <<<'PHP'
                <?php
                declare(strict_types=1);
                exit(\Aggregator\ExecScript::run(\Acme\Parts\Translator::items(...)));
                PHP);
            [$code, $output] = self::composer(['install', '--no-interaction', '--no-progress'], $project, "$tmp/home");
            self::assertSame(0, $code, "composer install: $output");

            $worker = WorkerProcess::start(["$project/vendor/bin/worker.php", 'handlers.php'], $project);
            $worker->handshake();
            $result = $worker->job(JobKind::Items, '{"class":"acme","code":"3310"}');
            self::assertSame('{"items":[{"code":"3310","from":"Acme\\\\Parts\\\\Translator"}]}', $result->payload);
            $result = $worker->job(JobKind::Suppliers, '{"code":"3310","apikey":"999"}');
            $error = json_decode($result->payload, true);
            self::assertSame(['Aggregator\PublicError', 'API key 999 may not search', true], [$error['class'], $error['error'], $error['public'] ?? null]);
            $worker->send(new Frame(Frame::CONTROL | Frame::CODEC_JSON, '{"stop":true}'));
            self::assertSame(0, $worker->wait(), 'stderr: ' . $worker->stderr());

            $process = proc_open(
                [PHP_BINARY, '-d', 'display_errors=stderr', '-d', "auto_prepend_file=$project/vendor/aggregator/worker/src/prepend.php", 'items.php'],
                [0 => ['pipe', 'r'], 1 => ['pipe', 'w'], 2 => ['pipe', 'w']],
                $pipes,
                $project,
            );
            fwrite($pipes[0], '{"class":"acme","code":"3310"}');
            fclose($pipes[0]);
            $stdout = (string)stream_get_contents($pipes[1]);
            $stderr = (string)stream_get_contents($pipes[2]);
            fclose($pipes[1]);
            fclose($pipes[2]);
            self::assertSame(0, proc_close($process), "exec script: $stderr");
            self::assertSame('{"items":[{"code":"3310","from":"Acme\\\\Parts\\\\Translator"}]}' . "\n", $stdout);

            // The package's own PHPUnit test, with the kit's TranslatorTestCase
            // from vendor/ and the aggregator from AGGREGATOR_BIN.
            mkdir("$project/tests");
            file_put_contents("$project/phpunit.xml", '<phpunit bootstrap="vendor/autoload.php" failOnWarning="true"><testsuites><testsuite name="acme"><directory suffix="Test.php">tests</directory></testsuite></testsuites></phpunit>');
            file_put_contents("$project/tests/TranslatorTest.php", <<<'PHP'
                <?php
                declare(strict_types=1);
                namespace Acme\Parts\Tests;
                use Aggregator\Testing\Translator;
                use Aggregator\Testing\TranslatorTestCase;
                final class TranslatorTest extends TranslatorTestCase
                {
                    public function testItemsAndARefusedKey(): void
                    {
                        $translator = Translator::worker(__DIR__ . '/../handlers.php');
                        self::assertItems([['code' => '3310', 'from' => 'Acme\Parts\Translator']], $translator->items(['class' => 'acme', 'code' => '3310']));
                        $answer = $translator->suppliers(['code' => '3310', 'brand' => 'b', 'apikey' => '999', 'analog' => 1]);
                        self::assertBrowserError('E_SCRIPT_ERROR', 'API key 999 may not search', $answer);
                    }
                }
                PHP);
            [$code, $output] = self::runCommand([self::phpunitBinary(), '--testdox'], $project, ['AGGREGATOR_BIN' => Translator::binary()]);
            self::assertSame(0, $code, "the package's phpunit: $output");
            self::assertStringContainsString('OK (1 test, 4 assertions)', $output);
        } finally {
            self::removeTree($tmp);
        }
    }

    /**
     * A project's composer.json that requires this checkout through a path
     * repository (copied, not linked; packagist off: no network).
     *
     * @param array<string, string> $psr4 the project's own namespaces
     * @return array<string, mixed>
     */
    private static function projectComposerJson(array $psr4): array
    {
        $json = [
            'name' => 'acme/translator',
            'repositories' => [
                ['type' => 'path', 'url' => realpath(ROOT), 'options' => ['symlink' => false, 'versions' => ['aggregator/worker' => '1.0.0']]],
                ['packagist.org' => false],
            ],
            'require' => ['aggregator/worker' => '*'],
        ];
        if ($psr4 !== []) {
            $json['autoload'] = ['psr-4' => $psr4];
        }
        return $json;
    }

    /** @param array<string, mixed> $data */
    private static function writeJson(string $file, array $data): void
    {
        file_put_contents($file, json_encode($data, JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES) . "\n");
    }

    /** The phpunit running these tests (Debian's /usr/bin/phpunit, or vendor's). */
    private static function phpunitBinary(): string
    {
        return (string)realpath((string)$_SERVER['SCRIPT_FILENAME']);
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
        return self::runCommand([(string)self::composerBinary(), ...$args], $cwd,
            ['COMPOSER_HOME' => $home, 'COMPOSER_NO_INTERACTION' => '1', 'COMPOSER_ALLOW_SUPERUSER' => '1']);
    }

    /**
     * Run $command in $cwd with $env added.
     *
     * @param string[]              $command
     * @param array<string, string> $env
     * @return array{0: int, 1: string} exit code, stdout and stderr
     */
    private static function runCommand(array $command, string $cwd, array $env): array
    {
        $out = (string)tempnam(sys_get_temp_dir(), 'comp');
        $process = proc_open(
            $command,
            [0 => ['file', '/dev/null', 'r'], 1 => ['file', $out, 'w'], 2 => ['file', $out, 'a']],
            $pipes,
            $cwd,
            $env + getenv(),
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

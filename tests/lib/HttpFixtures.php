<?php

declare(strict_types=1);

namespace Aggregator\Tests;

use Aggregator\Testing\Answer;
use Aggregator\Testing\PhpServer;
use Aggregator\Testing\Translator;
use PHPUnit\Framework\Assert;

/**
 * What the tests of the HTTP code translators already have share: the
 * supplier of tests/fixtures/http/supplier.php (started once per class), a
 * URL nothing listens on, and a scenarios translator's answer by scenario.
 */
trait HttpFixtures
{
    private static ?PhpServer $supplier = null;

    public static function setUpBeforeClass(): void
    {
        self::$supplier = PhpServer::start(ROOT . '/tests/fixtures/http/supplier.php');
    }

    public static function tearDownAfterClass(): void
    {
        self::$supplier?->stop();
        self::$supplier = null;
    }

    private static function url(): string
    {
        return (string)self::$supplier?->url;
    }

    /** A URL nothing listens on, the same for the whole run, so that both modes' messages can be compared. */
    private static function refused(): string
    {
        static $url = null;
        if ($url === null) {
            $socket = stream_socket_server('tcp://127.0.0.1:0');
            $url = 'http://' . stream_socket_get_name($socket, false);
            fclose($socket);
        }
        return $url;
    }

    /** The scenario translator (tests/fixtures/http/Scenarios.php) in worker mode: the aggregator's HTTP. */
    private static function scenarioWorker(): Translator
    {
        return Translator::worker(ROOT . '/tests/fixtures/http/scenario_handlers.php')->withConfig(['aggregator.timeout.script' => 30]);
    }

    /** The scenario translator in exec mode: PHP's own HTTP. */
    private static function scenarioExec(): Translator
    {
        $script = ROOT . '/tests/fixtures/http/scenario_items.php';
        return Translator::exec($script, $script)->withConfig(['aggregator.timeout.script' => 30]);
    }

    /**
     * Run a set of scenarios (StreamScenarios.php: "Stream") and key the
     * items by scenario.
     *
     * @param array<string, mixed> $input more of the input than url and refused
     * @return array<string, array<string, mixed>>
     */
    private static function scenarioItems(Translator $translator, string $set, array $input = []): array
    {
        return self::byScenario(self::runScenarios($translator, $set, $input));
    }

    /** @param array<string, mixed> $input */
    private static function runScenarios(Translator $translator, string $set, array $input = []): Answer
    {
        $answer = $translator->items(['set' => $set] + $input + ['url' => self::url(), 'refused' => self::refused()]);
        Assert::assertSame('', $answer->code, $answer->describe());
        return $answer;
    }

    /** @return array<string, array<string, mixed>> */
    private static function byScenario(Answer $answer): array
    {
        $items = [];
        foreach ($answer->items as $item) {
            $items[(string)$item['scenario']] = $item;
        }
        return $items;
    }

    /**
     * Both modes ran the same scenarios with the same outcome.
     *
     * @param array<string, array<string, mixed>> $exec
     * @param array<string, array<string, mixed>> $worker
     */
    private static function assertSameScenarios(array $exec, array $worker, string $what): void
    {
        Assert::assertSame(array_keys($exec), array_keys($worker), 'the same scenarios ran');
        foreach ($exec as $name => $item) {
            Assert::assertSame($item, $worker[$name], "scenario '$name': worker mode differs from $what");
        }
    }
}

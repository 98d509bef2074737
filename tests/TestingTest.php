<?php

declare(strict_types=1);

namespace Aggregator\Tests;

use Aggregator\Testing\Answer;
use Aggregator\Testing\Translator;
use Aggregator\Testing\TranslatorAssertions;
use PHPUnit\Framework\AssertionFailedError;
use PHPUnit\Framework\TestCase;

/**
 * The translator test kit itself (src/Testing): where it finds the
 * aggregator, what it says when it cannot, and its failure messages. The
 * example's tests (script/example/tests) use it for real.
 */
final class TestingTest extends TestCase
{
    use AssertThrows;
    use TranslatorAssertions;

    private string|false $binBefore = false;

    protected function setUp(): void
    {
        $this->binBefore = getenv('AGGREGATOR_BIN');
    }

    protected function tearDown(): void
    {
        putenv($this->binBefore === false ? 'AGGREGATOR_BIN' : "AGGREGATOR_BIN=$this->binBefore");
    }

    /** @testdox a missing binary is an error that says where it comes from and how to point at it */
    public function testAMissingBinarySaysWhereItComesFrom(): void
    {
        putenv('AGGREGATOR_BIN=/nowhere/aggregator');
        $e = self::assertThrows(\RuntimeException::class, static fn () => Translator::worker(ROOT . '/script/handlers.php')->items(['class' => 'normal-1']));
        foreach (['AGGREGATOR_BIN=/nowhere/aggregator', 'make dist', 'make build', 'PATH'] as $part) {
            self::assertStringContainsString($part, $e->getMessage());
        }
    }

    /** @testdox without AGGREGATOR_BIN the kit's own bin/aggregator is used (this checkout after make build) */
    public function testTheKitsOwnBinaryIsFound(): void
    {
        putenv('AGGREGATOR_BIN');
        if (!is_executable(ROOT . '/bin/aggregator')) {
            self::markTestSkipped('bin/aggregator is not built (make php-test builds it)');
        }
        self::assertSame(realpath(ROOT . '/bin/aggregator'), realpath(Translator::binary()));
    }

    /** @testdox a configuration the aggregator refuses (a mistyped key) is an error, not an answer */
    public function testARefusedConfigurationIsAnError(): void
    {
        $translator = Translator::worker(ROOT . '/script/handlers.php')->withConfig(['aggregator.worker.handler' => 'x.php']);
        $e = self::assertThrows(\RuntimeException::class, static fn () => $translator->items(['class' => 'normal-1']));
        self::assertStringContainsString('did you mean aggregator.worker.handlers?', $e->getMessage());
    }

    /** @testdox the demo in both modes: items, and a failure's message shows code, reason, exception and stderr */
    public function testTheDemoInBothModesAndFailureMessages(): void
    {
        foreach ([Translator::worker(ROOT . '/script/handlers.php'), Translator::exec(ROOT . '/script/suppliers.php', ROOT . '/script/items.php')] as $translator) {
            $translator = $translator->withEnv(['DEMO_DELAY_MS' => '0']);
            $answer = $translator->items(['class' => 'normal-2', 'brand' => 'ctr', 'info' => ['supplier' => 'normal-2']]);
            self::assertAnswered($answer);
            self::assertCount(3, $answer->items);
            self::assertSame(['supplier' => 'normal-2'], $answer->info);
            self::assertBrowserError('E_SCRIPT_ERROR', 'Supplier refused-2 does not deliver to your region', $translator->items(['class' => 'refused-2']));

            $failed = $translator->items(['class' => 'error-1']);
            $e = self::assertThrows(AssertionFailedError::class, static fn () => self::assertAnswered($failed));
            foreach (["items in {$translator->mode()} mode: ERROR E_SCRIPT_ERROR", 'exception: RuntimeException: demo: the items script failed for supplier error-1 at ', 'Demo.php:', '#0 '] as $part) {
                self::assertStringContainsString($part, $e->getMessage());
            }
        }
    }

    /** @testdox an answer is read from call --json */
    public function testAnAnswerIsReadFromCallJson(): void
    {
        $a = Answer::fromReport('{"kind":"items","mode":"exec","output":"","code":"E_SCRIPT_ERROR","error":"PHP failed","message":"closed","items":[],"suppliers":[],"duration_ms":1.5,"stderr":["x"]}', 1);
        self::assertSame(['items', 'exec', 'E_SCRIPT_ERROR', 'closed', ['x'], 1.5, false], [$a->kind, $a->mode, $a->code, $a->message, $a->stderr, $a->durationMs, $a->ok()]);
        self::assertNull(Answer::fromReport('{"kind":"items","code":""}', 0)->message);
        self::assertThrows(\UnexpectedValueException::class, static fn () => Answer::fromReport('not json', 2));
    }
}

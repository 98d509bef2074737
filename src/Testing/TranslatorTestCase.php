<?php

declare(strict_types=1);

namespace Aggregator\Testing;

use PHPUnit\Framework\TestCase;

/**
 * A PHPUnit test case for a translator: run its handlers the way the
 * aggregator does (Translator: `aggregator call --json`) and assert what the
 * browser would get.
 *
 *     final class AcmeTest extends TranslatorTestCase
 *     {
 *         public function testItems(): void
 *         {
 *             $answer = Translator::worker(__DIR__ . '/../handlers.php')->items(['class' => 'acme', 'code' => '3310']);
 *             self::assertAnswered($answer);
 *             self::assertSame('3310', $answer->items[0]['code']);
 *         }
 *
 *         public function testUnknownKey(): void
 *         {
 *             $answer = Translator::worker(__DIR__ . '/../handlers.php')->suppliers(['code' => '3310', 'brand' => 'ctr', 'apikey' => 'nope', 'analog' => 1]);
 *             self::assertBrowserError('E_SCRIPT_ERROR', 'API key nope may not search', $answer);
 *         }
 *     }
 *
 * docs/testing-translators.md has the whole story; a class that extends
 * another base can `use TranslatorAssertions;` instead.
 */
abstract class TranslatorTestCase extends TestCase
{
    use TranslatorAssertions;
}

<?php

declare(strict_types=1);

namespace Aggregator\Example\Tests;

use Aggregator\Testing\PhpServer;
use Aggregator\Testing\Translator;
use Aggregator\Testing\TranslatorTestCase;

/**
 * The example translator tested the way a translator package tests itself:
 * its handlers run through the aggregator (`aggregator call --json`), in both
 * modes, against the fake supplier API, and each test asserts what the
 * browser would get. Nothing here depends on this repository's layout but
 * the paths to the handlers: the same test works in a package's own repo
 * (docs/testing-translators.md).
 */
final class PartsApiTranslatorTest extends TranslatorTestCase
{
    private const REQUEST = ['code' => '3310', 'brand' => 'ctr', 'apikey' => 'k-111', 'analog' => 1];

    private static ?PhpServer $supplier = null;

    public static function setUpBeforeClass(): void
    {
        self::$supplier = PhpServer::start(dirname(__DIR__) . '/fake_supplier.php');
    }

    public static function tearDownAfterClass(): void
    {
        self::$supplier?->stop();
        self::$supplier = null;
    }

    /** @return array<string, array{0: Translator}> the translator in each mode */
    public static function modes(): array
    {
        $dir = dirname(__DIR__);
        return [
            'worker mode' => [Translator::worker("$dir/handlers.php")],
            'exec mode' => [Translator::exec("$dir/suppliers.php", "$dir/items.php")],
        ];
    }

    /**
     * @dataProvider modes
     * @testdox $_dataName: a search asks the one supplier, with its URL, key and timeout
     */
    public function testASearchAsksTheSupplier(Translator $translator): void
    {
        $answer = self::against($translator)->suppliers(self::REQUEST);
        self::assertAnswered($answer);
        self::assertCount(1, $answer->suppliers);
        self::assertSame('partsapi', $answer->suppliers[0]['class']);
        self::assertSame(self::$supplier?->url, $answer->suppliers[0]['params']['url']);
    }

    /**
     * @dataProvider modes
     * @testdox $_dataName: the supplier's parts become items, its crosses nested suppliers
     */
    public function testPartsBecomeItemsAndCrossesNestedSuppliers(Translator $translator): void
    {
        $answer = self::against($translator)->items(self::element());
        self::assertItems([
            ['code' => '3310', 'brand' => 'CTR', 'name' => 'Ball joint 3310', 'price' => 12.5, 'quantity' => 7, 'delivery' => 1, 'supplier' => 'partsapi'],
            ['code' => '3310', 'brand' => 'CTR', 'name' => 'Ball joint 3310 (used)', 'price' => 8.9, 'quantity' => 2, 'delivery' => 3, 'supplier' => 'partsapi'],
        ], $answer);
        self::assertSame(['3310-A1', '3310-A2'], array_column($answer->suppliers, 'code'));
        self::assertSame(['title' => 'Parts API (example)'], $answer->info, 'the browser gets info as _info');
    }

    /**
     * @dataProvider modes
     * @testdox $_dataName: without an apikey the customer reads why (a PublicError's _message)
     */
    public function testWithoutAnApikeyTheCustomerReadsWhy(Translator $translator): void
    {
        $answer = self::against($translator)->suppliers(['apikey' => ''] + self::REQUEST);
        self::assertBrowserError('E_SCRIPT_ERROR', 'Sign in to search: the request has no API key', $answer);
    }

    /**
     * @dataProvider modes
     * @testdox $_dataName: a failing supplier is E_SCRIPT_ERROR with no _message; the exception says why
     */
    public function testAFailingSupplierIsAScriptErrorWithoutMessage(Translator $translator): void
    {
        $answer = self::against($translator)->items(self::element('/fail'));
        self::assertBrowserError('E_SCRIPT_ERROR', null, $answer);
        self::assertSame('Aggregator\Example\SupplierException', $answer->exception['class'] ?? null);
        self::assertStringContainsString('HTTP 500', $answer->exception['message'] ?? '');
    }

    /**
     * @dataProvider modes
     * @testdox $_dataName: a supplier slower than aggregator.timeout.script is E_SCRIPT_TIMEOUT
     */
    public function testASupplierSlowerThanTheScriptTimeIsATimeout(Translator $translator): void
    {
        $answer = self::against($translator)->withConfig(['aggregator.timeout.script' => '0.5'])->items(self::element('/slow/2'));
        self::assertBrowserError('E_SCRIPT_TIMEOUT', null, $answer);
    }

    /** @testdox the browser's request is checked as the server checks it: a missing field is E_ILLEGAL_REQUEST */
    public function testAMissingFieldIsAnIllegalRequest(): void
    {
        $answer = self::against(self::modes()['worker mode'][0])->suppliers(['code' => '3310']);
        self::assertBrowserError('E_ILLEGAL_REQUEST', null, $answer);
    }

    /** The translator pointed at the fake supplier (handlers.php reads EXAMPLE_SUPPLIER_URL). */
    private static function against(Translator $translator): Translator
    {
        return $translator->withEnv(['EXAMPLE_SUPPLIER_URL' => (string)self::$supplier?->url]);
    }

    /**
     * A supplier element as the suppliers handler makes it, its URL + $path.
     *
     * @return array<string, mixed>
     */
    private static function element(string $path = ''): array
    {
        return [
            'class' => 'partsapi',
            'params' => ['url' => self::$supplier?->url . $path, 'key' => 'k-111', 'timeout' => 3],
            'code' => '3310',
            'brand' => 'ctr',
            'analog' => '1',
            'info' => ['title' => 'Parts API (example)'],
        ];
    }
}

<?php

declare(strict_types=1);

namespace Aggregator\Tests;

use Aggregator\Testing\PhpServer;
use Aggregator\Testing\Translator;
use Aggregator\Testing\TranslatorTestCase;

/**
 * The porting example (script/porting/, docs/porting.md): three legacy
 * handlers (SoapClient, file_get_contents, curl) ported with the least
 * change answer a search against fakes of their suppliers, the same in
 * both modes; and the hazard the guide warns of: state kept outside the
 * job is another job's after a suspension point.
 */
final class PortingExampleTest extends TranslatorTestCase
{
    private const REQUEST = ['code' => '3310', 'brand' => 'ctr', 'apikey' => 'k', 'analog' => 1];

    private static ?PhpServer $suppliers = null;

    public static function setUpBeforeClass(): void
    {
        self::$suppliers = PhpServer::start(ROOT . '/script/porting/fake_suppliers.php');
    }

    public static function tearDownAfterClass(): void
    {
        self::$suppliers?->stop();
        self::$suppliers = null;
    }

    /** @return array<string, array{0: Translator}> */
    public static function modes(): array
    {
        $dir = ROOT . '/script/porting';
        return [
            'worker mode' => [Translator::worker("$dir/handlers.php")],
            'exec mode' => [Translator::exec("$dir/suppliers.php", "$dir/items.php")],
        ];
    }

    /**
     * @dataProvider modes
     * @testdox $_dataName: each ported handler finds the part at its supplier
     */
    public function testThePortedHandlersFindTheParts(Translator $translator): void
    {
        $translator = $translator->withEnv(['PORTING_SUPPLIERS_URL' => (string)self::$suppliers?->url]);
        $search = $translator->suppliers(self::REQUEST);
        self::assertAnswered($search);
        self::assertSame(['rossko', 'berg', 'armtek'], array_column($search->suppliers, 'class'));
        $found = [];
        foreach ($search->suppliers as $supplier) {
            $answer = $translator->items($supplier);
            self::assertAnswered($answer);
            $found[$supplier['class']] = $answer->items;
        }
        self::assertSame([
            'rossko' => [['code' => '3310', 'brand' => 'CTR', 'name' => 'Шаровая опора', 'price' => 966, 'quantity' => 4],
                ['code' => '3310', 'brand' => 'CTR', 'name' => 'Шаровая опора', 'price' => 912, 'quantity' => 20]],
            'berg' => [['code' => '3310', 'brand' => 'CTR', 'name' => 'Ball joint', 'price' => 974.88, 'quantity' => 6]],
            'armtek' => [['code' => '3310', 'brand' => 'CTR', 'name' => 'Ball joint', 'price' => 958.8, 'quantity' => 12]],
        ], $found);
    }

    /**
     * @dataProvider modes
     * @testdox $_dataName: a supplier that refuses the key is an ERROR for that supplier, not an empty list
     */
    public function testARefusedKeyIsAnError(Translator $translator): void
    {
        $translator = $translator->withEnv(['PORTING_SUPPLIERS_URL' => (string)self::$suppliers?->url]);
        foreach ($translator->suppliers(self::REQUEST)->suppliers as $supplier) {
            $supplier['params'] = ['key1' => 'bad', 'key' => 'bad', 'password' => 'bad'] + $supplier['params'];
            $answer = $translator->items($supplier);
            self::assertBrowserError('E_SCRIPT_ERROR', null, $answer, $supplier['class']);
            self::assertStringStartsWith("{$supplier['class']}: ", (string)$answer->exception['message']);
        }
    }

    /**
     * Two jobs on one worker, each waiting in file_get_contents(): the one
     * that kept its article in a global answers with the other's, since the
     * other job ran while it waited; a local variable keeps its own.
     */
    public function testStateOutsideTheJobIsAnotherJobsAfterASuspension(): void
    {
        foreach (['global' => 'B', 'local' => 'A'] as $state => $firstJobAnswers) {
            $worker = WorkerProcess::worker([ROOT . '/tests/fixtures/http/interleave_handlers.php']);
            $worker->handshake();
            $a = $worker->startJob(2, (string)json_encode(['state' => $state, 'code' => 'A', 'url' => 'http://supplier.example/a']));
            $callA = $worker->fetchCall();
            $b = $worker->startJob(2, (string)json_encode(['state' => $state, 'code' => 'B', 'url' => 'http://supplier.example/b']));
            $callB = $worker->fetchCall();
            $worker->answerFetch($b, $callB['call'], 200, [], 'ok');
            self::assertSame(['items' => [['code' => 'B']]], $worker->result()->json());
            $worker->answerFetch($a, $callA['call'], 200, [], 'ok');
            self::assertSame(['items' => [['code' => $firstJobAnswers]]], $worker->result()->json(), "job A with its article in a $state");
            $worker->closeInput();
            self::assertSame(0, $worker->wait());
        }
    }
}

<?php

declare(strict_types=1);

namespace Aggregator\Tests;

use Aggregator\ForkCall;
use PHPUnit\Framework\TestCase;

/**
 * ForkCall: what a fork server's child must look like before it includes
 * the script (pool/forkserver's parity test compares the whole child with
 * `php script.php`; these are the pieces).
 */
final class ForkCallTest extends TestCase
{
    private const REQUEST = '{"id":7,"dir":"/srv/app","env":["A=1","PHP_SELF=env"],"script":"script/items.php","argv":["script/items.php","x"]}';

    /** @testdox a request becomes a call */
    public function testARequestBecomesACall(): void
    {
        $call = ForkCall::fromJson(self::REQUEST);
        self::assertSame(7, $call->id);
        self::assertSame('/srv/app', $call->dir);
        self::assertSame(['A=1', 'PHP_SELF=env'], $call->env);
        self::assertSame(['script/items.php', 'x'], $call->argv);
        self::assertSame('/srv/app/script/items.php', $call->path());
        self::assertSame('/abs/s.php', ForkCall::fromJson('{"id":1,"dir":"/srv","env":[],"script":"/abs/s.php","argv":["/abs/s.php"]}')->path());
    }

    /** @testdox what is not a request is refused with what it was */
    public function testWhatIsNotARequestIsRefused(): void
    {
        foreach (['not json', '[]', '{"id":"7","dir":"/","env":[],"script":"s.php","argv":["s.php"]}',
            '{"id":7,"dir":"/","env":[1],"script":"s.php","argv":["s.php"]}',
            '{"id":7,"dir":"/","env":[],"script":"s.php","argv":[]}',
            '{"id":7,"dir":"/","env":{"A":"1"},"script":"s.php","argv":["s.php"]}'] as $json) {
            try {
                ForkCall::fromJson($json);
                self::fail("accepted $json");
            } catch (\UnexpectedValueException $e) {
                self::assertStringContainsString(substr($json, 0, 20), $e->getMessage());
            }
        }
    }

    /** @testdox $_SERVER: the environment, then the CLI's entries in the CLI's order */
    public function testServerIsTheEnvironmentThenTheCliEntries(): void
    {
        $server = ForkCall::fromJson(self::REQUEST)->server(['A' => '1', 'PHP_SELF' => 'env'], 'GPCS', 1700000000.25);
        self::assertSame(['A', 'PHP_SELF', 'SCRIPT_NAME', 'SCRIPT_FILENAME', 'PATH_TRANSLATED', 'DOCUMENT_ROOT',
            'REQUEST_TIME_FLOAT', 'REQUEST_TIME', 'argv', 'argc'], array_keys($server));
        self::assertSame('script/items.php', $server['PHP_SELF'], 'the CLI overwrites a variable of the same name');
        self::assertSame(1700000000, $server['REQUEST_TIME']);
        self::assertSame(1700000000.25, $server['REQUEST_TIME_FLOAT']);
        self::assertSame(2, $server['argc']);
        self::assertSame([], ForkCall::fromJson(self::REQUEST)->server(['A' => '1'], 'GPC', 1.0), 'no S in variables_order: no $_SERVER');
    }

    /** @testdox applyEnv leaves exactly the call's environment, in its order */
    public function testApplyEnvLeavesExactlyTheCallsEnvironment(): void
    {
        $saved = getenv();
        try {
            putenv('FORKCALL_TEST_LEFTOVER=1');
            $call = new ForkCall(1, '/', ['B=2', 'A=1', 'NOEQUALS', 'EMPTY='], 's.php', ['s.php']);
            $call->applyEnv();
            self::assertSame(['B' => '2', 'A' => '1', 'EMPTY' => ''], getenv());
        } finally {
            $restore = [];
            foreach ($saved as $name => $value) {
                $restore[] = "$name=$value";
            }
            (new ForkCall(1, '/', $restore, 's.php', ['s.php']))->applyEnv();
        }
        self::assertSame($saved, getenv());
    }
}

<?php

declare(strict_types=1);

namespace Aggregator\Tests;

use Aggregator\FetchBatch;
use Aggregator\Http\Request;
use Aggregator\Job;
use Aggregator\NoAnswer;
use Aggregator\Response;
use PHPUnit\Framework\TestCase;

/** A job's state, changed only through its methods: await a batch, answers in any order, cancel. */
final class JobTest extends TestCase
{
    use AssertThrows;

    /** @testdox the answers come back in the batch's order once the last call is answered */
    public function testAnswersInTheBatchsOrder(): void
    {
        $job = self::job();
        $calls = $job->await(new FetchBatch([Request::from('http://s.test/a', []), Request::from('http://s.test/b', [])]));
        self::assertSame([1, 2], array_keys($calls), 'call ids unique in the job');
        self::assertSame('http://s.test/b', $calls[2]->url);
        $b = new Response(200, [], 'b');
        self::assertNull($job->answer(2, $b), 'one of two');
        self::assertNull($job->answer(9, $b), 'a call it does not wait for');
        $a = new NoAnswer('refused', 'no');
        self::assertSame([$a, $b], $job->answer(1, $a));
        self::assertSame([3], array_keys($job->await(new FetchBatch([Request::from('http://s.test/c', [])]))), 'the next batch numbers on');
    }

    /** @testdox cancel: a waiting job drops its calls once; later answers are ignored */
    public function testCancel(): void
    {
        $job = self::job();
        self::assertFalse($job->cancel(), 'not waiting: nothing to throw into');
        self::assertTrue($job->isCancelled());
        $job = self::job();
        $job->await(new FetchBatch([Request::from('http://s.test/a', [])]));
        self::assertTrue($job->cancel(), 'waiting: throw Cancelled into it');
        self::assertFalse($job->cancel(), 'once');
        self::assertNull($job->answer(1, new Response(200, [], '')), 'the answer came too late');
    }

    /** @testdox a batch is a non-empty list of Requests */
    public function testABatchIsANonEmptyListOfRequests(): void
    {
        self::assertThrows(\InvalidArgumentException::class, static fn () => new FetchBatch([]));
        self::assertThrows(\InvalidArgumentException::class, static fn () => new FetchBatch(['http://s.test/']));
    }

    private static function job(): Job
    {
        return new Job(1, 2, '{}', new \Fiber(static fn () => null));
    }
}

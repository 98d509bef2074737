<?php

declare(strict_types=1);

namespace Aggregator\Tests;

use Aggregator\Frame;
use Aggregator\JobKind;
use PHPUnit\Framework\TestCase;

/**
 * fetch() in a real worker (worker.php over fds 3/4, tests/lib/WorkerProcess.php):
 * a call PHP cannot send fails its own job with \InvalidArgumentException,
 * before anything reaches the aggregator, and the worker's other jobs go on;
 * the options reach the aggregator encoded, in the head of docs/PROTOCOL.md.
 */
final class FetchWorkerTest extends TestCase
{
    /** @testdox a poison call fails its job alone: the job waiting beside it on the same worker goes on */
    public function testAPoisonCallFailsItsJobAlone(): void
    {
        $worker = self::worker();
        $waiting = $worker->startJob(JobKind::Items, '{"url":"http://s.test/slow"}');
        $call = $worker->fetchCall();
        self::assertSame($waiting, $call['id']);

        $poison = json_decode($worker->job(JobKind::Suppliers, '{}')->payload, true)['poison'];
        self::assertCount(12, $poison);
        $inputs = array_map(static fn (string $name): string => json_encode(['url' => 'http://s.test/x', 'poison' => $name]), $poison);
        $inputs[] = '{"url":"http://s.test/x","crlf":true}';
        $inputs[] = '{"url":"http://s.test/x","options":{"timeout":1e400}}'; // JSON's way to INF
        foreach ($inputs as $input) {
            $id = $worker->startJob(JobKind::Items, $input);
            $result = $worker->result(); // its result, not a fetch frame: nothing went to the aggregator
            self::assertSame($id, $result->id, $input);
            $error = $result->error();
            self::assertSame('InvalidArgumentException', $error['class'], "$input: {$error['error']}");
            self::assertStringStartsWith('fetch(): ', $error['error']);
            self::assertStringEndsWith('tests/fixtures/poison.php', $error['file'], "$input: at the translator's call");
        }

        $worker->answerFetch($waiting, $call['call'], 200, [], 'still here');
        $result = $worker->result();
        self::assertSame($waiting, $result->id);
        self::assertSame(['status' => 200, 'body' => 'still here'], $result->json(), 'the waiting job went on');
        $worker->send(new Frame(Frame::CONTROL | Frame::CODEC_JSON, '{"ping":true}'));
        self::assertSame(0, json_decode($worker->receive()->payload, true)['jobs'], 'the worker serves on, no job left in it');
        $worker->send(new Frame(Frame::CONTROL | Frame::CODEC_JSON, '{"stop":true}'));
        self::assertSame(0, $worker->wait());
        self::assertSame("AGGREGATOR-BACKTRACE-READY\n", $worker->stderr(), 'nothing else for the log: the failures travel as data');
    }

    /** @testdox query, json, form, auth, redirects and not_failures reach the aggregator encoded in the call's head and body */
    public function testTheOptionsReachTheAggregatorEncoded(): void
    {
        $worker = self::worker();
        $worker->startJob(JobKind::Items, json_encode(['url' => 'http://s.test/find parts?key=k', 'options' => [
            'method' => 'post', 'query' => ['code' => 'KYB 334'], 'json' => ['brand' => 'Ауди'],
            'auth' => ['shop', 'pw'], 'headers' => ['X-Api-Key' => 'k'], 'redirects' => 3, 'redirect_headers' => true, 'not_failures' => [404],
        ]]));
        $call = $worker->fetchCall();
        self::assertSame([
            'method' => 'POST',
            'url' => 'http://s.test/find%20parts?key=k&code=KYB%20334',
            'headers' => [['X-Api-Key', 'k'], ['Content-Type', 'application/json'], ['Authorization', 'Basic ' . base64_encode('shop:pw')]],
            'timeout' => null,
            'redirects' => 3,
            'redirect_headers' => true,
            'not_failures' => [404],
        ], $call['request']);
        self::assertSame('{"brand":"Ауди"}', $call['body']);

        $worker->startJob(JobKind::Items, json_encode(['url' => 'http://s.test/x', 'options' => ['form' => ['q' => 'a b'], 'redirects' => 0]]));
        $call = $worker->fetchCall();
        self::assertSame([0, 'q=a+b'], [$call['request']['redirects'], $call['body']]);
        self::assertArrayNotHasKey('redirect_headers', $call['request'], 'absent: a redirect to another host carries no header of the translator');
        $worker->kill();
        $worker->wait();
    }

    private static function worker(): WorkerProcess
    {
        $worker = WorkerProcess::worker(['tests/fixtures/poison.php']);
        $worker->handshake();
        return $worker;
    }
}

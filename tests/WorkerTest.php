<?php

declare(strict_types=1);

namespace Aggregator\Tests;

use Aggregator\Frame;
use Aggregator\FrameType;
use Aggregator\JobKind;
use PHPUnit\Framework\TestCase;

final class WorkerTest extends TestCase
{
    /** @testdox echo: handshake, jobs of both kinds, ping, stop */
    public function testEchoHandshakeJobsOfBothKindsPingStop(): void
    {
        $worker = self::startedWorker('echo');
        $input = '{"code":"3310","brand":"ctr","name":"Привет, 世界","path":"a/b","n":1.5}';
        $result = $worker->job(JobKind::Suppliers, $input);
        self::assertSuccess($result);
        self::assertSame($input, $result->payload, 'unescaped unicode and slashes');
        $result = $worker->job(JobKind::Items, '{"class":"normal-1"}');
        self::assertSuccess($result);
        self::assertSame('{"class":"normal-1"}', $result->payload);

        $worker->send(new Frame(Frame::CONTROL | Frame::CODEC_JSON, '{"ping":true}'));
        $pong = $worker->receive();
        self::assertSame(Frame::CONTROL | Frame::CODEC_JSON, $pong->flags, 'pong flags');
        $message = json_decode($pong->payload, true);
        self::assertSame(true, $message['pong']);
        self::assertTrue(is_int($message['memory']) && $message['memory'] > 0, 'pong memory');
        self::stopWorker($worker);
    }

    /** @testdox a 200 KB job and result */
    public function testA200KbJobAndResult(): void
    {
        $worker = self::startedWorker('echo');
        $input = json_encode(['blob' => str_repeat('Привет, 世界 ', 10_000)], JSON_UNESCAPED_UNICODE);
        $result = $worker->job(JobKind::Items, $input);
        self::assertTrue($result->payload === $input, 'big payload round-trips');
        self::stopWorker($worker);
    }

    /** @testdox EOF on fd 3 ends the worker with exit code 0 */
    public function testEofOnFd3EndsTheWorkerWithExitCode0(): void
    {
        $worker = self::startedWorker('echo');
        $worker->closeInput();
        self::assertNull($worker->receive(), 'fd 4 is closed');
        self::assertSame(0, $worker->wait());
    }

    /** @testdox bad input is an ERROR frame and the worker goes on */
    public function testBadInputIsAnErrorFrameAndTheWorkerGoesOn(): void
    {
        $worker = self::startedWorker('echo');
        self::assertSame('JsonException', self::assertError($worker->job(JobKind::Suppliers, '{not json'))['class']);
        self::assertStringContainsString('must be a JSON object', self::assertError($worker->job(JobKind::Suppliers, '42'))['error']);
        self::assertStringContainsString('unknown job kind 7: option 2 must be 1 (suppliers) or 2 (items)', self::assertError($worker->job(7, '{}'))['error']);
        $worker->send(new Frame(Frame::CODEC_RAW, '{}', [FrameType::Job->value, 99]));
        $missing = $worker->result();
        self::assertSame(99, $missing->id);
        self::assertStringContainsString('unknown job kind (missing)', self::assertError($missing)['error']);
        self::assertSuccess($worker->job(JobKind::Items, '{"a":1}'));
        self::stopWorker($worker);
        self::assertStringNotContainsString('JsonException', $worker->stderr(), 'failures travel as data, not as stderr lines');
    }

    /** @testdox an exception becomes an ERROR frame with class, file, line and trace */
    public function testAnExceptionBecomesAnErrorFrameWithClassFileLineAndTrace(): void
    {
        $worker = self::startedWorker('exception');
        $error = self::assertError($worker->job(JobKind::Items, '{"class":"x"}'));
        self::assertSame('boom', $error['error']);
        self::assertSame('LogicException', $error['class']);
        self::assertSame(realpath(ROOT . '/pool/testdata/exception.php'), realpath($error['file']));
        self::assertSame(9, $error['line']);
        self::assertStringContainsString('explode_here()', $error['trace']);
        self::assertArrayNotHasKey('public', $error, 'a LogicException is not for the customer');
        self::stopWorker($worker);
    }

    /** @testdox handlers files that fail to load: exit 1, no handshake, a clear message */
    public function testHandlersFilesThatFailToLoadExit1WithAClearMessage(): void
    {
        $bad = (string)tempnam(sys_get_temp_dir(), 'handlers');
        file_put_contents($bad, '<?php return ["suppliers" => fn (array $a) => $a];');
        $cases = [
            'pool/testdata/broken.php' => 'ParseError',
            'pool/testdata/failboot.php' => 'cannot connect to the database',
            'pool/testdata/missing.php' => 'does not exist',
            $bad => "a callable 'items'",
            '' => 'no handlers file given',
        ];
        foreach ($cases as $file => $message) {
            $worker = WorkerProcess::worker($file === '' ? [] : [$file], null, [], ['AGGREGATOR_HANDLERS' => '']);
            self::assertNull($worker->receive(), "$file: no handshake");
            self::assertSame(1, $worker->wait(), "$file: exit code");
            self::assertStringContainsString($message, $worker->stderr(), $file);
        }
        unlink($bad);
    }

    /** @testdox the handlers file from AGGREGATOR_HANDLERS, and from another working directory */
    public function testTheHandlersFileFromTheEnvironmentAndFromAnotherWorkingDirectory(): void
    {
        $worker = WorkerProcess::worker([], null, [], ['AGGREGATOR_HANDLERS' => 'pool/testdata/echo.php']);
        $worker->handshake();
        self::stopWorker($worker);
        foreach (['pool/testdata/echo.php', realpath(ROOT . '/pool/testdata/echo.php')] as $path) {
            $worker = WorkerProcess::worker([$path], sys_get_temp_dir());
            $worker->handshake();
            self::assertSuccess($worker->job(JobKind::Items, '{}'));
            self::stopWorker($worker);
        }
    }

    /** @testdox without fd 3 and 4 the worker exits 1 with a message */
    public function testWithoutFd3And4TheWorkerExits1WithAMessage(): void
    {
        // The shell closes fds 3 and 4, which this test runner may have open; PHP then
        // reuses those numbers for its own files, which the worker must not mistake for pipes.
        $command = ['/bin/sh', '-c', 'exec 3<&- 4>&- "$@"', 'sh', PHP_BINARY, ROOT . '/worker.php', 'pool/testdata/echo.php'];
        $process = proc_open($command, [2 => ['pipe', 'w']], $pipes, ROOT);
        $stderr = stream_get_contents($pipes[2]);
        fclose($pipes[2]);
        self::assertSame(1, proc_close($process));
        self::assertStringContainsString('file descriptor 3', $stderr);
        self::assertStringContainsString('must be started by the aggregator', $stderr);
        $process = proc_open([PHP_BINARY, ROOT . '/worker.php', 'pool/testdata/echo.php'], [2 => ['pipe', 'w'], 3 => ['file', '/dev/null', 'r']], $pipes, ROOT);
        $stderr = stream_get_contents($pipes[2]);
        fclose($pipes[2]);
        self::assertSame(1, proc_close($process));
        self::assertStringContainsString('file descriptor 3 is not a pipe or a socket', $stderr);
    }

    /** @testdox the reset hook runs after every job */
    public function testTheResetHookRunsAfterEveryJob(): void
    {
        $worker = self::startedWorker('reset');
        foreach ([JobKind::Suppliers, JobKind::Items, JobKind::Items] as $kind) {
            self::assertSame('{"count":1}', $worker->job($kind, '{}')->payload);
        }
        self::stopWorker($worker);
    }

    /** @testdox exit() in a job: an ERROR frame says so (fatal), then the exit code comes through */
    public function testExitInAJobIsReportedAndTheExitCodeComesThrough(): void
    {
        $worker = self::startedWorker('crash');
        self::assertSuccess($worker->job(JobKind::Items, '{"crash":false}'));
        $error = self::assertError($worker->job(JobKind::Items, '{"crash":true}'));
        self::assertSame('Exit', $error['class']);
        self::assertTrue($error['fatal'], 'the process is going');
        self::assertStringContainsString('exit()', $error['error']);
        self::assertNull($worker->receive(), 'then fd 4 closes');
        self::assertSame(3, $worker->wait());
    }

    /** @testdox die('text') in a job: its failure says the text and where die() was called; what the job echoed before travels with it */
    public function testDieWithATextIsReportedWithItsTextAndPlace(): void
    {
        $worker = WorkerProcess::worker(['tests/fixtures/output.php']);
        $worker->handshake();
        self::assertSuccess($worker->job(JobKind::Items, '{"ok":1}'));
        $result = $worker->job(JobKind::Items, '{"die":"no stock file: /var/stock.csv"}');
        $error = self::assertError($result);
        self::assertSame(['Exit', true], [$error['class'], $error['fatal']]);
        self::assertSame('the handler called exit() in the middle of a job: "no stock file: /var/stock.csv"', $error['error']);
        $fixture = realpath(ROOT . '/tests/fixtures/output.php');
        self::assertSame([$fixture, self::lineOf($fixture, 'die($why);')], [$error['file'], $error['line']], 'where die() was called');
        self::assertSame("before the die\n", $result->output, 'the echo before it, once; the text is in the failure');
        self::assertNull($worker->receive(), 'then fd 4 closes');
        self::assertSame(0, $worker->wait(), 'die() with a text exits 0, as PHP does');
        self::assertSame('', $worker->stdout(), 'nothing of it goes to stdout, apart from its job');
    }

    /** @testdox exit() after an echo: PHP does not say where exit() was, the failure says where the last output came from */
    public function testExitAfterAnEchoNamesWhereTheLastOutputCameFrom(): void
    {
        $worker = WorkerProcess::worker(['tests/fixtures/output.php']);
        $worker->handshake();
        $result = $worker->job(JobKind::Items, '{"echo":"bye"}');
        $error = self::assertError($result);
        $fixture = realpath(ROOT . '/tests/fixtures/output.php');
        $echo = self::lineOf($fixture, "echo \$input['echo'];");
        self::assertSame("the handler called exit() in the middle of a job (its last output was written at $fixture:$echo)", $error['error']);
        self::assertSame(['', 0], [$error['file'], $error['line']], 'not located: no place is made up');
        self::assertSame('bye', $result->output);
        self::assertSame(4, $worker->wait());
    }

    /** @testdox memory grows across jobs and is reported */
    public function testMemoryGrowsAcrossJobsAndIsReported(): void
    {
        $worker = self::startedWorker('memory');
        $first = $worker->job(JobKind::Items, '{"mb":4}');
        self::assertSuccess($first);
        self::assertSame('{"items":[]}', $first->payload);
        $second = $worker->job(JobKind::Items, '{"mb":4}');
        self::assertTrue($second->memory >= $first->memory + (4 << 20), 'memory grew by 4 MB');
        self::stopWorker($worker);
    }

    /** @testdox memory exhausted in a job: an ERROR frame is sent before the process dies */
    public function testMemoryExhaustedInAJobSendsAnErrorFrameBeforeTheProcessDies(): void
    {
        $worker = self::startedWorker('memory', ['-d', 'memory_limit=16M']);
        $error = self::assertError($worker->job(JobKind::Items, '{"mb":64}'));
        self::assertSame('FatalError', $error['class']);
        self::assertStringContainsString('Allowed memory size', $error['error']);
        self::assertTrue($error['fatal']);
        self::assertStringContainsString('memory_limit is 16M', $error['hint']);
        self::assertStringContainsString('aggregator.worker.command', $error['hint'], 'the hint says where the limit comes from');
        self::assertSame(255, $worker->wait());
    }

    /** @testdox stray output travels with its job's result, stderr goes to stderr; the answers are untouched */
    public function testStrayOutputTravelsWithItsJobsResult(): void
    {
        $worker = self::startedWorker('stray');
        $first = $worker->job(JobKind::Items, '{"a":"b"}');
        self::assertSame('{"a":"b"}', $first->payload);
        self::assertSame("stray output\n", $first->output);
        $second = $worker->job(JobKind::Suppliers, '{"c":"d"}');
        self::assertSame('{"c":"d"}', $second->payload);
        self::assertSame("stray output\n", $second->output);
        self::stopWorker($worker);
        self::assertSame('', $worker->stdout(), 'nothing of a job reaches stdout');
        self::assertStringContainsString('stray error', $worker->stderr());
    }

    /** @testdox a job that prints more than 64 KB: the first 64 KB travel with its result, the rest goes to stdout (the log) */
    public function testOutputOver64KbGoesToStdout(): void
    {
        $worker = WorkerProcess::worker(['tests/fixtures/output.php']);
        $worker->handshake();
        $result = $worker->job(JobKind::Items, '{"kb":100}');
        self::assertSame('[]', $result->payload);
        self::assertSame(65536, strlen($result->output));
        self::assertStringStartsWith(str_repeat('a', 1023) . "\n" . str_repeat('b', 1023), $result->output);
        self::assertSuccess($worker->job(JobKind::Items, '{"ok":1}'));
        self::stopWorker($worker);
        self::assertSame(100 * 1024 - 65536, strlen($worker->stdout()), 'the rest, once');
        self::assertStringEndsWith(str_repeat('v', 1023) . "\n", $worker->stdout(), 'up to the 100th line');
    }

    /** @testdox a 5 MB string answer */
    public function testA5MbStringAnswer(): void
    {
        $worker = self::startedWorker('bigoutput');
        $result = $worker->job(JobKind::Items, '{"bytes":5000000}');
        self::assertSuccess($result);
        self::assertSame(5_000_000, strlen($result->payload));
        self::assertSame('', trim($result->payload, 'x'));
        self::assertSame('', $worker->job(JobKind::Items, '{"bytes":0}')->payload);
        self::stopWorker($worker);
    }

    /** @testdox sleep.php sleeps, and with fork starts a child and reports its pid */
    public function testSleepSleepsAndWithForkStartsAChildAndReportsItsPid(): void
    {
        $worker = self::startedWorker('sleep');
        $start = microtime(true);
        self::assertSame('{"sleep":0.3}', $worker->job(JobKind::Items, '{"sleep":0.3}')->payload);
        self::assertTrue(microtime(true) - $start >= 0.3, 'slept');
        $pidfile = (string)tempnam(sys_get_temp_dir(), 'pid');
        $answer = json_decode($worker->job(JobKind::Items, json_encode(['fork' => true, 'pidfile' => $pidfile]))->payload, true);
        $pid = $answer['child_pid'];
        self::assertSame("$pid\n", file_get_contents($pidfile));
        unlink($pidfile);
        self::assertTrue(posix_kill($pid, 0), 'the child is alive');
        posix_kill($pid, SIGKILL);
        self::stopWorker($worker);
        self::assertStringContainsString("child pid $pid", $worker->stderr());
    }

    /** @testdox the demo handlers answer like the exec scripts */
    public function testTheDemoHandlersAnswerLikeTheExecScripts(): void
    {
        $worker = self::startedWorker('../../script/handlers', [], ['DEMO_DELAY_MS' => '0']);
        $request = '{"code":"normal","brand":"x","apikey":"1","analog":1,"params":{"code":"normal","brand":"x","apikey":"1","analog":1}}';
        $suppliers = json_decode($worker->job(JobKind::Suppliers, $request)->payload, true)['suppliers'];
        self::assertSame(['normal-1', 'normal-2', 'normal-3'], array_column($suppliers, 'class'));
        $items = json_decode($worker->job(JobKind::Items, json_encode($suppliers[0]))->payload, true)['items'];
        self::assertSame(3, count($items));
        self::assertSame('Not a JSON', $worker->job(JobKind::Items, '{"class":"badjson-1"}')->payload);
        self::assertSame('RuntimeException', self::assertError($worker->job(JobKind::Items, '{"class":"error-1"}'))['class']);
        self::stopWorker($worker);
    }

    /** @testdox fetch(): two jobs wait for their calls at once; answers resume each, in any order */
    public function testTwoJobsWaitInFetchAtOnce(): void
    {
        $worker = self::startedWorker('fetch');
        $one = $worker->startJob(JobKind::Items, '{"url":"http://supplier.test/one","options":{"method":"post","headers":{"X-Api-Key":"k"},"body":"q=1","timeout":2.5}}');
        $call1 = $worker->fetchCall();
        self::assertSame($one, $call1['id']);
        self::assertSame(['method' => 'POST', 'url' => 'http://supplier.test/one', 'headers' => [['X-Api-Key', 'k']], 'timeout' => 2.5], $call1['request']);
        self::assertSame('q=1', $call1['body']);
        $two = $worker->startJob(JobKind::Items, '{"url":"https://supplier.test/two"}');
        $call2 = $worker->fetchCall();
        self::assertSame($two, $call2['id'], 'the second job runs while the first waits');
        self::assertNull($call2['request']['timeout'], 'no timeout: what is left of the job\'s time');

        $worker->answerFetch($two, $call2['call'], 503, ['content-type' => 'text/plain'], 'busy', 'https://supplier.test/two');
        $result = $worker->result();
        self::assertSame($two, $result->id);
        self::assertSame(['status' => 503, 'headers' => ['content-type' => 'text/plain'], 'body' => 'busy', 'url' => 'https://supplier.test/two', 'md5' => md5('busy')], $result->json(), 'a 503 is an answer');
        $worker->answerFetch($one, $call1['call'], 200, [], "\x00binary\xff");
        $result = $worker->result();
        self::assertSame($one, $result->id);
        self::assertSame(md5("\x00binary\xff"), $result->json()['md5'], 'the body is binary-safe');
        self::stopWorker($worker);
    }

    /** @testdox fetchAll(): the calls go out together, the answers come back keyed */
    public function testFetchAllSendsTheCallsTogether(): void
    {
        $worker = self::startedWorker('fetch');
        $id = $worker->startJob(JobKind::Items, '{"all":{"search":"http://s.test/search","price":["http://s.test/price",{"method":"POST"}],"bad":"ftp://s.test/"}}');
        $a = $worker->fetchCall();
        $b = $worker->fetchCall();
        self::assertSame(['http://s.test/search', 'http://s.test/price'], [$a['request']['url'], $b['request']['url']], 'no frame for the ftp URL');
        $worker->failFetch($id, $b['call'], 'refused', 'POST http://s.test/price: refused: connection refused');
        $worker->answerFetch($id, $a['call'], 200, [], '{"parts":[]}');
        $answer = $worker->result()->json();
        self::assertSame(['search', 'price', 'bad'], array_keys($answer));
        self::assertSame(200, $answer['search']['status']);
        self::assertSame(['cause' => 'refused', 'message' => 'POST http://s.test/price: refused: connection refused'], $answer['price']);
        self::assertSame('scheme', $answer['bad']['cause']);
        self::stopWorker($worker);
    }

    /** @testdox a call with no answer throws FetchException at the translator's call */
    public function testNoAnswerThrowsFetchException(): void
    {
        $worker = self::startedWorker('fetch');
        $id = $worker->startJob(JobKind::Items, '{"url":"http://s.test/x"}');
        $call = $worker->fetchCall();
        $worker->failFetch($id, $call['call'], 'timeout', 'GET http://s.test/x: timeout: no answer within 2 s');
        $error = self::assertError($worker->result());
        self::assertSame('Aggregator\FetchException', $error['class']);
        self::assertSame('GET http://s.test/x: timeout: no answer within 2 s', $error['error']);
        self::assertStringEndsWith('pool/testdata/fetch.php', $error['file'], 'the trace points at the handler\'s call');
        self::stopWorker($worker);
    }

    /** @testdox cancel: a job waiting in fetch() is dropped, its finally runs, the other job goes on */
    public function testCancelDropsAJobAndRunsItsFinally(): void
    {
        $worker = self::startedWorker('fetch');
        $marker = (string)tempnam(sys_get_temp_dir(), 'finally');
        unlink($marker);
        $one = $worker->startJob(JobKind::Items, json_encode(['url' => 'http://s.test/slow', 'finally' => $marker]));
        $worker->fetchCall();
        $two = $worker->startJob(JobKind::Items, '{"url":"http://s.test/fast"}');
        $call2 = $worker->fetchCall();
        $worker->cancel($one);
        $gone = $worker->result();
        self::assertSame($one, $gone->id);
        self::assertSame('Aggregator\Cancelled', self::assertError($gone)['class']);
        self::assertSame('ran', @file_get_contents($marker), 'the finally block ran');
        @unlink($marker);
        $worker->answerFetch($two, $call2['call'], 200, [], 'ok');
        self::assertSame('ok', $worker->result()->json()['body']);
        self::stopWorker($worker);
    }

    /** @testdox a PublicError is marked public: its message may reach the customer */
    public function testPublicErrorIsMarkedPublic(): void
    {
        $worker = self::startedWorker('fetch');
        $error = self::assertError($worker->job(JobKind::Suppliers, '{"message":"API key 999 may not search"}'));
        self::assertSame('Aggregator\PublicError', $error['class']);
        self::assertSame('API key 999 may not search', $error['error']);
        self::assertTrue($error['public']);
        self::stopWorker($worker);
    }

    /** @testdox SIGUSR1 with two jobs waiting: one section per job, each with its own stack */
    public function testBacktraceShowsEveryJobInFlight(): void
    {
        if (!function_exists('posix_kill')) {
            self::markTestSkipped('needs posix');
        }
        $worker = self::startedWorker('fetch');
        $one = $worker->startJob(JobKind::Items, '{"url":"http://s.test/1"}');
        $worker->fetchCall();
        $two = $worker->startJob(JobKind::Items, '{"url":"http://s.test/2"}');
        $worker->fetchCall();
        posix_kill($worker->pid(), SIGUSR1);
        $deadline = microtime(true) + 5;
        while (!str_contains($worker->stderr(), 'AGGREGATOR-BACKTRACE-END') && microtime(true) < $deadline) {
            usleep(10_000);
        }
        $stderr = $worker->stderr();
        self::assertMatchesRegularExpression("/AGGREGATOR-BACKTRACE-BEGIN\njob $one\n#0 \\S+functions.php:\\d+ Aggregator\\\\fetch\\(\\)\n#1 \\S+pool\\/testdata\\/fetch.php:\\d+ /", $stderr);
        self::assertStringContainsString("\njob $two\n#0 ", $stderr);
        $worker->kill();
        $worker->wait();
    }

    /**
     * A worker on a pool/testdata handlers file, past its handshake.
     *
     * @param string[]                  $phpOptions
     * @param array<string,string>|null $env
     */
    private static function startedWorker(string $handlers, array $phpOptions = [], ?array $env = null): WorkerProcess
    {
        $worker = WorkerProcess::worker(["pool/testdata/$handlers.php"], null, $phpOptions, $env);
        self::assertSame($worker->pid(), $worker->handshake(), 'the handshake announces the worker pid');
        return $worker;
    }

    /** The number of the line of $file that holds $code. */
    private static function lineOf(string $file, string $code): int
    {
        foreach (file($file) as $i => $line) {
            if (str_contains($line, $code)) {
                return $i + 1;
            }
        }
        self::fail("$code is not in $file");
    }

    private static function assertSuccess(WorkerResult $result): void
    {
        self::assertSame(Frame::CODEC_RAW, $result->flags, 'success flags; payload: ' . $result->payload);
        self::assertTrue($result->memory > 0, 'memory is reported');
    }

    /** @return array<string, mixed> the decoded ERROR payload */
    private static function assertError(WorkerResult $result): array
    {
        self::assertTrue($result->memory > 0, 'memory is reported');
        $error = $result->error();
        self::assertSame(['error', 'class', 'file', 'line', 'trace'], array_slice(array_keys($error), 0, 5), 'error fields');
        return $error;
    }

    /** Stop the worker with a stop frame and check it exits 0. */
    private static function stopWorker(WorkerProcess $worker): void
    {
        $worker->send(new Frame(Frame::CONTROL | Frame::CODEC_JSON, '{"stop":true}'));
        self::assertSame(0, $worker->wait(), 'exit code after stop; stderr: ' . $worker->stderr());
    }
}

<?php

declare(strict_types=1);

namespace Aggregator\Tests;

use Aggregator\Frame;
use PHPUnit\Framework\TestCase;

final class WorkerTest extends TestCase
{
    private const SUPPLIERS = 1;
    private const ITEMS = 2;

    /** @testdox echo: handshake, jobs of both kinds, ping, stop */
    public function testEchoHandshakeJobsOfBothKindsPingStop(): void
    {
        $worker = self::startedWorker('echo');
        $input = '{"code":"3310","brand":"ctr","name":"Привет, 世界","path":"a/b","n":1.5}';
        $result = $worker->job(self::SUPPLIERS, $input);
        self::assertSuccess($result);
        self::assertSame($input, $result->payload, 'unescaped unicode and slashes');
        $result = $worker->job(self::ITEMS, '{"class":"normal-1"}');
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
        $result = $worker->job(self::ITEMS, $input);
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
        self::assertSame('JsonException', self::assertError($worker->job(self::SUPPLIERS, '{not json'))['class']);
        self::assertStringContainsString('must be a JSON object', self::assertError($worker->job(self::SUPPLIERS, '42'))['error']);
        self::assertStringContainsString('unknown job kind 7', self::assertError($worker->job(7, '{}'))['error']);
        $worker->send(new Frame(Frame::CODEC_RAW, '{}'));
        self::assertStringContainsString('unknown job kind (missing)', self::assertError($worker->receive())['error']);
        self::assertSuccess($worker->job(self::ITEMS, '{"a":1}'));
        self::stopWorker($worker);
        self::assertStringContainsString('worker: job failed: JsonException', $worker->stderr());
    }

    /** @testdox an exception becomes an ERROR frame with class, file, line and trace */
    public function testAnExceptionBecomesAnErrorFrameWithClassFileLineAndTrace(): void
    {
        $worker = self::startedWorker('exception');
        $error = self::assertError($worker->job(self::ITEMS, '{"class":"x"}'));
        self::assertSame('boom', $error['error']);
        self::assertSame('LogicException', $error['class']);
        self::assertSame(realpath(ROOT . '/pool/testdata/exception.php'), realpath($error['file']));
        self::assertSame(9, $error['line']);
        self::assertStringContainsString('explode_here()', $error['trace']);
        self::stopWorker($worker);
        self::assertStringContainsString('worker: job failed: LogicException: boom in ', $worker->stderr());
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
            self::assertSuccess($worker->job(self::ITEMS, '{}'));
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
        foreach ([self::SUPPLIERS, self::ITEMS, self::ITEMS] as $kind) {
            self::assertSame('{"count":1}', $worker->job($kind, '{}')->payload);
        }
        self::stopWorker($worker);
    }

    /** @testdox exit() in a job: no result, the exit code comes through */
    public function testExitInAJobGivesNoResultAndTheExitCodeComesThrough(): void
    {
        $worker = self::startedWorker('crash');
        self::assertSuccess($worker->job(self::ITEMS, '{"crash":false}'));
        $worker->send(new Frame(Frame::CODEC_RAW, '{"crash":true}', [self::ITEMS]));
        self::assertNull($worker->receive(), 'fd 4 closes without a result');
        self::assertSame(3, $worker->wait());
        self::assertStringContainsString('in the middle of a job', $worker->stderr());
    }

    /** @testdox memory grows across jobs and is reported */
    public function testMemoryGrowsAcrossJobsAndIsReported(): void
    {
        $worker = self::startedWorker('memory');
        $first = $worker->job(self::ITEMS, '{"mb":4}');
        self::assertSuccess($first);
        self::assertSame('{"items":[]}', $first->payload);
        $second = $worker->job(self::ITEMS, '{"mb":4}');
        self::assertTrue($second->option(0) >= $first->option(0) + (4 << 20), 'memory grew by 4 MB');
        self::stopWorker($worker);
    }

    /** @testdox memory exhausted in a job: an ERROR frame is sent before the process dies */
    public function testMemoryExhaustedInAJobSendsAnErrorFrameBeforeTheProcessDies(): void
    {
        $worker = self::startedWorker('memory', ['-d', 'memory_limit=16M']);
        $error = self::assertError($worker->job(self::ITEMS, '{"mb":64}'));
        self::assertSame('FatalError', $error['class']);
        self::assertStringContainsString('Allowed memory size', $error['error']);
        self::assertSame(255, $worker->wait());
    }

    /** @testdox stray stdout and stderr output does not touch the frames */
    public function testStrayStdoutAndStderrOutputDoesNotTouchTheFrames(): void
    {
        $worker = self::startedWorker('stray');
        self::assertSame('{"a":"b"}', $worker->job(self::ITEMS, '{"a":"b"}')->payload);
        self::assertSame('{"c":"d"}', $worker->job(self::SUPPLIERS, '{"c":"d"}')->payload);
        self::stopWorker($worker);
        self::assertSame("stray output\nstray output\n", $worker->stdout());
        self::assertStringContainsString('stray error', $worker->stderr());
    }

    /** @testdox a 5 MB string answer */
    public function testA5MbStringAnswer(): void
    {
        $worker = self::startedWorker('bigoutput');
        $result = $worker->job(self::ITEMS, '{"bytes":5000000}');
        self::assertSuccess($result);
        self::assertSame(5_000_000, strlen($result->payload));
        self::assertSame('', trim($result->payload, 'x'));
        self::assertSame('', $worker->job(self::ITEMS, '{"bytes":0}')->payload);
        self::stopWorker($worker);
    }

    /** @testdox sleep.php sleeps, and with fork starts a child and reports its pid */
    public function testSleepSleepsAndWithForkStartsAChildAndReportsItsPid(): void
    {
        $worker = self::startedWorker('sleep');
        $start = microtime(true);
        self::assertSame('{"sleep":0.3}', $worker->job(self::ITEMS, '{"sleep":0.3}')->payload);
        self::assertTrue(microtime(true) - $start >= 0.3, 'slept');
        $pidfile = (string)tempnam(sys_get_temp_dir(), 'pid');
        $answer = json_decode($worker->job(self::ITEMS, json_encode(['fork' => true, 'pidfile' => $pidfile]))->payload, true);
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
        $suppliers = json_decode($worker->job(self::SUPPLIERS, $request)->payload, true)['suppliers'];
        self::assertSame(['normal-1', 'normal-2', 'normal-3'], array_column($suppliers, 'class'));
        $items = json_decode($worker->job(self::ITEMS, json_encode($suppliers[0]))->payload, true)['items'];
        self::assertSame(3, count($items));
        self::assertSame('Not a JSON', $worker->job(self::ITEMS, '{"class":"badjson-1"}')->payload);
        self::assertSame('RuntimeException', self::assertError($worker->job(self::ITEMS, '{"class":"error-1"}'))['class']);
        self::stopWorker($worker);
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

    private static function assertSuccess(Frame $result): void
    {
        self::assertSame(Frame::CODEC_RAW, $result->flags, 'success flags; payload: ' . $result->payload);
        self::assertSame(1, count($result->options), 'one option: memory');
        self::assertTrue($result->option(0) > 0, 'memory is reported');
    }

    /** @return array<string, mixed> the decoded ERROR payload */
    private static function assertError(Frame $result): array
    {
        self::assertSame(Frame::CODEC_JSON | Frame::ERROR, $result->flags, 'error flags; payload: ' . $result->payload);
        self::assertTrue($result->option(0) > 0, 'memory is reported');
        $error = json_decode($result->payload, true);
        self::assertSame(['error', 'class', 'file', 'line', 'trace'], array_keys($error), 'error fields');
        return $error;
    }

    /** Stop the worker with a stop frame and check it exits 0. */
    private static function stopWorker(WorkerProcess $worker): void
    {
        $worker->send(new Frame(Frame::CONTROL | Frame::CODEC_JSON, '{"stop":true}'));
        self::assertSame(0, $worker->wait(), 'exit code after stop; stderr: ' . $worker->stderr());
    }
}

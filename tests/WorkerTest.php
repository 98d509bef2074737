<?php

declare(strict_types=1);

use Aggregator\Frame;
use Aggregator\Tests\Assert;
use Aggregator\Tests\WorkerProcess;

const SUPPLIERS = 1;
const ITEMS = 2;

/** A worker on a pool/testdata handlers file, past its handshake. */
function started_worker(string $handlers, array $phpOptions = [], ?array $env = null): WorkerProcess
{
    $worker = WorkerProcess::worker(["pool/testdata/$handlers.php"], null, $phpOptions, $env);
    Assert::same($worker->pid(), $worker->handshake(), 'the handshake announces the worker pid');
    return $worker;
}

function assert_success(Frame $result): void
{
    Assert::same(Frame::CODEC_RAW, $result->flags, 'success flags; payload: ' . $result->payload);
    Assert::same(1, count($result->options), 'one option: memory');
    Assert::true($result->option(0) > 0, 'memory is reported');
}

/** @return array<string, mixed> the decoded ERROR payload */
function assert_error(Frame $result): array
{
    Assert::same(Frame::CODEC_JSON | Frame::ERROR, $result->flags, 'error flags; payload: ' . $result->payload);
    Assert::true($result->option(0) > 0, 'memory is reported');
    $error = json_decode($result->payload, true);
    Assert::same(['error', 'class', 'file', 'line', 'trace'], array_keys($error), 'error fields');
    return $error;
}

/** Stop the worker with a stop frame and check it exits 0. */
function stop_worker(WorkerProcess $worker): void
{
    $worker->send(new Frame(Frame::CONTROL | Frame::CODEC_JSON, '{"stop":true}'));
    Assert::same(0, $worker->wait(), 'exit code after stop; stderr: ' . $worker->stderr());
}

return [
    'echo: handshake, jobs of both kinds, ping, stop' => function (): void {
        $worker = started_worker('echo');
        $input = '{"code":"3310","brand":"ctr","name":"Привет, 世界","path":"a/b","n":1.5}';
        $result = $worker->job(SUPPLIERS, $input);
        assert_success($result);
        Assert::same($input, $result->payload, 'unescaped unicode and slashes');
        $result = $worker->job(ITEMS, '{"class":"normal-1"}');
        assert_success($result);
        Assert::same('{"class":"normal-1"}', $result->payload);

        $worker->send(new Frame(Frame::CONTROL | Frame::CODEC_JSON, '{"ping":true}'));
        $pong = $worker->receive();
        Assert::same(Frame::CONTROL | Frame::CODEC_JSON, $pong->flags, 'pong flags');
        $message = json_decode($pong->payload, true);
        Assert::same(true, $message['pong']);
        Assert::true(is_int($message['memory']) && $message['memory'] > 0, 'pong memory');
        stop_worker($worker);
    },
    'a 200 KB job and result' => function (): void {
        $worker = started_worker('echo');
        $input = json_encode(['blob' => str_repeat('Привет, 世界 ', 10_000)], JSON_UNESCAPED_UNICODE);
        $result = $worker->job(ITEMS, $input);
        Assert::true($result->payload === $input, 'big payload round-trips');
        stop_worker($worker);
    },
    'EOF on fd 3 ends the worker with exit code 0' => function (): void {
        $worker = started_worker('echo');
        $worker->closeInput();
        Assert::same(null, $worker->receive(), 'fd 4 is closed');
        Assert::same(0, $worker->wait());
    },
    'bad input is an ERROR frame and the worker goes on' => function (): void {
        $worker = started_worker('echo');
        Assert::same('JsonException', assert_error($worker->job(SUPPLIERS, '{not json'))['class']);
        Assert::contains('must be a JSON object', assert_error($worker->job(SUPPLIERS, '42'))['error']);
        Assert::contains('unknown job kind 7', assert_error($worker->job(7, '{}'))['error']);
        $worker->send(new Frame(Frame::CODEC_RAW, '{}'));
        Assert::contains('unknown job kind (missing)', assert_error($worker->receive())['error']);
        assert_success($worker->job(ITEMS, '{"a":1}'));
        stop_worker($worker);
        Assert::contains('worker: job failed: JsonException', $worker->stderr());
    },
    'an exception becomes an ERROR frame with class, file, line and trace' => function (): void {
        $worker = started_worker('exception');
        $error = assert_error($worker->job(ITEMS, '{"class":"x"}'));
        Assert::same('boom', $error['error']);
        Assert::same('LogicException', $error['class']);
        Assert::same(realpath(ROOT . '/pool/testdata/exception.php'), realpath($error['file']));
        Assert::same(9, $error['line']);
        Assert::contains('explode_here()', $error['trace']);
        stop_worker($worker);
        Assert::contains('worker: job failed: LogicException: boom in ', $worker->stderr());
    },
    'handlers files that fail to load: exit 1, no handshake, a clear message' => function (): void {
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
            Assert::same(null, $worker->receive(), "$file: no handshake");
            Assert::same(1, $worker->wait(), "$file: exit code");
            Assert::contains($message, $worker->stderr(), $file);
        }
        unlink($bad);
    },
    'the handlers file from AGGREGATOR_HANDLERS, and from another working directory' => function (): void {
        $worker = WorkerProcess::worker([], null, [], ['AGGREGATOR_HANDLERS' => 'pool/testdata/echo.php']);
        $worker->handshake();
        stop_worker($worker);
        foreach (['pool/testdata/echo.php', realpath(ROOT . '/pool/testdata/echo.php')] as $path) {
            $worker = WorkerProcess::worker([$path], sys_get_temp_dir());
            $worker->handshake();
            assert_success($worker->job(ITEMS, '{}'));
            stop_worker($worker);
        }
    },
    'without fd 3 and 4 the worker exits 1 with a message' => function (): void {
        // The shell closes fds 3 and 4, which this test runner may have open; PHP then
        // reuses those numbers for its own files, which the worker must not mistake for pipes.
        $command = ['/bin/sh', '-c', 'exec 3<&- 4>&- "$@"', 'sh', PHP_BINARY, ROOT . '/worker.php', 'pool/testdata/echo.php'];
        $process = proc_open($command, [2 => ['pipe', 'w']], $pipes, ROOT);
        $stderr = stream_get_contents($pipes[2]);
        fclose($pipes[2]);
        Assert::same(1, proc_close($process));
        Assert::contains('file descriptor 3', $stderr);
        Assert::contains('must be started by the aggregator', $stderr);
        $process = proc_open([PHP_BINARY, ROOT . '/worker.php', 'pool/testdata/echo.php'], [2 => ['pipe', 'w'], 3 => ['file', '/dev/null', 'r']], $pipes, ROOT);
        $stderr = stream_get_contents($pipes[2]);
        fclose($pipes[2]);
        Assert::same(1, proc_close($process));
        Assert::contains('file descriptor 3 is not a pipe or a socket', $stderr);
    },
    'the reset hook runs after every job' => function (): void {
        $worker = started_worker('reset');
        foreach ([SUPPLIERS, ITEMS, ITEMS] as $kind) {
            Assert::same('{"count":1}', $worker->job($kind, '{}')->payload);
        }
        stop_worker($worker);
    },
    'exit() in a job: no result, the exit code comes through' => function (): void {
        $worker = started_worker('crash');
        assert_success($worker->job(ITEMS, '{"crash":false}'));
        $worker->send(new Frame(Frame::CODEC_RAW, '{"crash":true}', [ITEMS]));
        Assert::same(null, $worker->receive(), 'fd 4 closes without a result');
        Assert::same(3, $worker->wait());
        Assert::contains('in the middle of a job', $worker->stderr());
    },
    'memory grows across jobs and is reported' => function (): void {
        $worker = started_worker('memory');
        $first = $worker->job(ITEMS, '{"mb":4}');
        assert_success($first);
        Assert::same('{"items":[]}', $first->payload);
        $second = $worker->job(ITEMS, '{"mb":4}');
        Assert::true($second->option(0) >= $first->option(0) + (4 << 20), 'memory grew by 4 MB');
        stop_worker($worker);
    },
    'memory exhausted in a job: an ERROR frame is sent before the process dies' => function (): void {
        $worker = started_worker('memory', ['-d', 'memory_limit=16M']);
        $error = assert_error($worker->job(ITEMS, '{"mb":64}'));
        Assert::same('FatalError', $error['class']);
        Assert::contains('Allowed memory size', $error['error']);
        Assert::same(255, $worker->wait());
    },
    'stray stdout and stderr output does not touch the frames' => function (): void {
        $worker = started_worker('stray');
        Assert::same('{"a":"b"}', $worker->job(ITEMS, '{"a":"b"}')->payload);
        Assert::same('{"c":"d"}', $worker->job(SUPPLIERS, '{"c":"d"}')->payload);
        stop_worker($worker);
        Assert::same("stray output\nstray output\n", $worker->stdout());
        Assert::contains('stray error', $worker->stderr());
    },
    'a 5 MB string answer' => function (): void {
        $worker = started_worker('bigoutput');
        $result = $worker->job(ITEMS, '{"bytes":5000000}');
        assert_success($result);
        Assert::same(5_000_000, strlen($result->payload));
        Assert::same('', trim($result->payload, 'x'));
        Assert::same('', $worker->job(ITEMS, '{"bytes":0}')->payload);
        stop_worker($worker);
    },
    'sleep.php sleeps, and with fork starts a child and reports its pid' => function (): void {
        $worker = started_worker('sleep');
        $start = microtime(true);
        Assert::same('{"sleep":0.3}', $worker->job(ITEMS, '{"sleep":0.3}')->payload);
        Assert::true(microtime(true) - $start >= 0.3, 'slept');
        $pidfile = (string)tempnam(sys_get_temp_dir(), 'pid');
        $answer = json_decode($worker->job(ITEMS, json_encode(['fork' => true, 'pidfile' => $pidfile]))->payload, true);
        $pid = $answer['child_pid'];
        Assert::same("$pid\n", file_get_contents($pidfile));
        unlink($pidfile);
        Assert::true(posix_kill($pid, 0), 'the child is alive');
        posix_kill($pid, SIGKILL);
        stop_worker($worker);
        Assert::contains("child pid $pid", $worker->stderr());
    },
    'the demo handlers answer like the exec scripts' => function (): void {
        $worker = started_worker('../../script/handlers', [], ['DEMO_DELAY_MS' => '0']);
        $request = '{"code":"normal","brand":"x","apikey":"1","analog":1,"params":{"code":"normal","brand":"x","apikey":"1","analog":1}}';
        $suppliers = json_decode($worker->job(SUPPLIERS, $request)->payload, true)['suppliers'];
        Assert::same(['normal-1', 'normal-2', 'normal-3'], array_column($suppliers, 'class'));
        $items = json_decode($worker->job(ITEMS, json_encode($suppliers[0]))->payload, true)['items'];
        Assert::same(3, count($items));
        Assert::same('Not a JSON', $worker->job(ITEMS, '{"class":"badjson-1"}')->payload);
        Assert::same('RuntimeException', assert_error($worker->job(ITEMS, '{"class":"error-1"}'))['class']);
        stop_worker($worker);
    },
];

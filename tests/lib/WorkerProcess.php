<?php

declare(strict_types=1);

namespace Aggregator\Tests;

use Aggregator\FetchException;
use Aggregator\Frame;
use Aggregator\FrameReader;
use Aggregator\FrameType;
use Aggregator\FrameWriter;
use Aggregator\Http\Request;
use Aggregator\Http\StreamTransport;
use Aggregator\JobKind;
use PHPUnit\Framework\Assert;

/**
 * A worker.php (or other PHP CLI) child process wired like the aggregator does:
 * fd 3 = jobs (we write), fd 4 = results (we read), stdout/stderr to temp files.
 * Its checks (handshake, a result came, timeouts) fail the test through
 * PHPUnit's Assert.
 */
final class WorkerProcess
{
    /** @var resource */
    private $process;

    /** @var array<int, resource> */
    private array $pipes;

    private FrameReader $reader;
    private FrameWriter $writer;
    private ?int $exitCode = null;
    private int $lastJob = 0;

    private function __construct(private readonly string $stdoutFile, private readonly string $stderrFile)
    {
    }

    /**
     * Start `php -d display_errors=stderr [phpOptions] worker.php [args]`.
     *
     * @param string[]                  $args       arguments after worker.php
     * @param string[]                  $phpOptions e.g. ['-d', 'memory_limit=16M']
     * @param array<string,string>|null $env        extra environment variables (they win over inherited ones)
     */
    public static function worker(array $args, ?string $cwd = null, array $phpOptions = [], ?array $env = null): self
    {
        return self::start([...$phpOptions, ROOT . '/worker.php', ...$args], $cwd, $env);
    }

    /**
     * Start `php -d display_errors=stderr <arguments>` with fds 3 and 4 as pipes.
     *
     * @param string[] $arguments
     */
    public static function start(array $arguments, ?string $cwd = null, ?array $env = null): self
    {
        $self = new self((string)tempnam(sys_get_temp_dir(), 'wout'), (string)tempnam(sys_get_temp_dir(), 'werr'));
        $spec = [
            0 => ['file', '/dev/null', 'r'],
            1 => ['file', $self->stdoutFile, 'w'],
            2 => ['file', $self->stderrFile, 'w'],
            3 => ['pipe', 'r'],
            4 => ['pipe', 'w'],
        ];
        $command = [PHP_BINARY, '-d', 'display_errors=stderr', ...$arguments];
        $process = proc_open($command, $spec, $pipes, $cwd ?? ROOT, $env === null ? null : $env + getenv());
        if ($process === false) {
            throw new \RuntimeException('proc_open failed: ' . implode(' ', $command));
        }
        $self->process = $process;
        $self->pipes = $pipes;
        $self->reader = new FrameReader($pipes[4]);
        $self->writer = new FrameWriter($pipes[3]);
        return $self;
    }

    public function pid(): int
    {
        return proc_get_status($this->process)['pid'];
    }

    public function send(Frame $frame): void
    {
        $this->writer->write($frame);
    }

    /** Write raw bytes to fd 3 (e.g. a deliberately corrupt frame). */
    public function sendRaw(string $bytes): void
    {
        fwrite($this->pipes[3], $bytes);
        fflush($this->pipes[3]);
    }

    /** The next frame from fd 4, or null at EOF; fails after $timeout seconds of silence. */
    public function receive(float $timeout = 10.0): ?Frame
    {
        $read = [$this->pipes[4]];
        $write = $except = [];
        $ready = stream_select($read, $write, $except, (int)$timeout, (int)(fmod($timeout, 1) * 1e6));
        if ($ready !== 1) {
            Assert::fail("no frame from the worker within {$timeout}s; stderr: " . $this->stderr());
        }
        return $this->reader->read();
    }

    /** Read the handshake and return the pid it announces. */
    public function handshake(): int
    {
        $frame = $this->receive();
        Assert::assertNotNull($frame, 'no handshake; stderr: ' . $this->stderr());
        Assert::assertSame(Frame::CONTROL | Frame::CODEC_JSON, $frame->flags, 'handshake flags');
        $message = json_decode($frame->payload, true);
        Assert::assertIsInt($message['pid'] ?? null, 'handshake payload: ' . $frame->payload);
        return $message['pid'];
    }

    /**
     * Send a job of $kind and return its result. Its fetch() calls are made
     * here, as the aggregator would make them (with PHP's streams).
     */
    public function job(JobKind|int $kind, string $payload): WorkerResult
    {
        $this->startJob($kind, $payload);
        while (true) {
            $frame = $this->receive();
            if ($frame === null || $frame->option(0) !== FrameType::Fetch->value) {
                return WorkerResult::fromFrame($frame);
            }
            $this->makeCall($frame);
        }
    }

    /** Make a fetch() call the worker asked for and send its answer. */
    private function makeCall(Frame $frame): void
    {
        [$id, $call, $headLength] = [(int)$frame->option(1), (int)$frame->option(2), (int)$frame->option(3)];
        $head = json_decode(substr($frame->payload, 0, $headLength), true);
        $headers = [];
        foreach ($head['headers'] as [$name, $value]) {
            $headers[$name] = $value;
        }
        $options = ['method' => $head['method'], 'headers' => $headers, 'timeout' => $head['timeout'],
            'redirects' => $head['redirects'] ?? null, 'redirect_headers' => $head['redirect_headers'] ?? null, 'not_failures' => $head['not_failures'] ?? null];
        $body = substr($frame->payload, $headLength);
        if ($body !== '') {
            $options['body'] = $body;
        }
        try {
            $response = (new StreamTransport())->send(Request::from($head['url'], $options));
            $this->answerFetch($id, $call, $response->status, $response->headers, $response->body, $response->url);
        } catch (FetchException $e) {
            $this->failFetch($id, $call, $e->cause, $e->getMessage());
        }
    }

    /** Send a job of $kind (an int: any option 2, to test a bad one) without waiting; returns its id. */
    public function startJob(JobKind|int $kind, string $payload): int
    {
        $id = ++$this->lastJob;
        $this->send(new Frame(Frame::CODEC_RAW, $payload, [FrameType::Job->value, $id, $kind instanceof JobKind ? $kind->value : $kind]));
        return $id;
    }

    /** The next frame, which must be a job's result. */
    public function result(): WorkerResult
    {
        return WorkerResult::fromFrame($this->receive());
    }

    /**
     * The next frame, which must be a fetch() call.
     *
     * @return array{id: int, call: int, request: array<string, mixed>, body: string}
     */
    public function fetchCall(): array
    {
        $frame = $this->receive();
        Assert::assertNotNull($frame, 'the worker closed fd 4 instead of calling');
        Assert::assertSame(FrameType::Fetch->value, $frame->option(0), 'a fetch frame; got options ' . json_encode($frame->options) . ' ' . $frame->payload);
        $head = (int)$frame->option(3);
        return ['id' => (int)$frame->option(1), 'call' => (int)$frame->option(2),
            'request' => json_decode(substr($frame->payload, 0, $head), true), 'body' => substr($frame->payload, $head)];
    }

    /**
     * Answer a fetch() call as the aggregator does.
     *
     * @param array<string, string> $headers
     */
    public function answerFetch(int $id, int $call, int $status, array $headers, string $body, string $url = ''): void
    {
        $head = json_encode(['status' => $status, 'headers' => (object)$headers, 'url' => $url]);
        $this->send(new Frame(Frame::CODEC_RAW, $head . $body, [FrameType::Fetch->value, $id, $call, strlen($head)]));
    }

    /** Tell a fetch() call it got no answer. */
    public function failFetch(int $id, int $call, string $cause, string $message): void
    {
        $payload = json_encode(['cause' => $cause, 'message' => $message]);
        $this->send(new Frame(Frame::CODEC_RAW | Frame::ERROR, $payload, [FrameType::Fetch->value, $id, $call, strlen($payload)]));
    }

    /** Cancel a job. */
    public function cancel(int $id): void
    {
        $this->send(new Frame(Frame::CONTROL | Frame::CODEC_JSON, json_encode(['cancel' => $id])));
    }

    /** Close our end of fd 3: the worker sees EOF. */
    public function closeInput(): void
    {
        if (is_resource($this->pipes[3])) {
            fclose($this->pipes[3]);
        }
    }

    /** Wait for the process to end and return its exit code (128+N when killed by signal N). */
    public function wait(float $timeout = 10.0): int
    {
        $deadline = microtime(true) + $timeout;
        while ($this->exitCode === null) {
            $status = proc_get_status($this->process);
            if (!$status['running']) {
                $this->exitCode = $status['signaled'] ? 128 + $status['termsig'] : $status['exitcode'];
                break;
            }
            if (microtime(true) > $deadline) {
                $this->kill();
                Assert::fail("the process did not exit within {$timeout}s");
            }
            usleep(10_000);
        }
        $this->closePipes();
        return $this->exitCode;
    }

    public function kill(): void
    {
        proc_terminate($this->process, 9);
    }

    public function stdout(): string
    {
        return (string)file_get_contents($this->stdoutFile);
    }

    public function stderr(): string
    {
        return (string)file_get_contents($this->stderrFile);
    }

    public function __destruct()
    {
        if ($this->exitCode === null) {
            $this->kill();
            $this->wait();
        }
        $this->closePipes();
        @unlink($this->stdoutFile);
        @unlink($this->stderrFile);
    }

    private function closePipes(): void
    {
        foreach ($this->pipes as $pipe) {
            if (is_resource($pipe)) {
                fclose($pipe);
            }
        }
    }
}

<?php

declare(strict_types=1);

namespace Aggregator;

/**
 * The long-lived PHP worker: reads jobs from fd 3, runs each handler in a
 * Fiber, writes results to fd 4 (docs/PROTOCOL.md). A job that calls
 * \Aggregator\fetch() suspends: the worker sends the call to the aggregator
 * and runs other jobs (up to aggregator.pool.concurrency) until the answer
 * resumes it. Fibers are kept between jobs, so a job costs no Fiber start.
 *
 * stdout and stderr are never used for frames: what a handler echoes during
 * a job travels in its result frame, and stderr goes to the aggregator's log.
 */
final class Worker
{
    /** json_encode flags for a handler's array answer. */
    public const JSON_FLAGS = JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE;

    /** The protocol version announced in the handshake. */
    public const PROTOCOL = 2;

    /** Stray output (echo) kept per job for the log; past it, output goes straight to stdout. */
    public const MAX_JOB_OUTPUT = 65536;

    /** @var array<int, Job> jobs in flight by id */
    private array $jobs = [];

    /** @var list<\Fiber> fibers parked between jobs */
    private array $idle = [];

    /** The job whose Fiber runs now, for the shutdown report and backtraces. */
    private ?Job $current = null;

    public function __construct(
        private readonly Handlers $handlers,
        private readonly FrameReader $reader,
        private readonly FrameWriter $writer,
    ) {
    }

    /**
     * Start a worker the way worker.php does and return the exit code.
     *
     * @param string[] $argv    $argv[1] is the handlers file; env AGGREGATOR_HANDLERS when absent
     * @param string   $baseDir where a relative handlers path is also looked for (the project root)
     */
    public static function main(array $argv, string $baseDir): int
    {
        try {
            $in = self::openFd(3, 'rb');
            $out = self::openFd(4, 'wb');
            Report::rememberMemoryLimit();
            $handlers = Handlers::load(self::handlersPath($argv, $baseDir));
            Http\StreamWrapper::installUnlessOff(); // http(s):// streams of jobs through the aggregator (SPEC §17)
            $worker = new self($handlers, new FrameReader($in), new FrameWriter($out));
            // SIGUSR1 prints the stacks of the jobs in flight to stderr
            // (slowlog, and before a timeout kill); see Backtrace.php.
            Backtrace::install($worker->inFlight(...));
            register_shutdown_function([$worker, 'onShutdown']);
            return $worker->run();
        } catch (HandlersException | FrameException $e) {
            self::log($e->getMessage());
            return 1;
        }
    }

    /**
     * Send the handshake, then serve frames until "stop" or end of input.
     *
     * @return int the exit code (0)
     * @throws FrameException when the pipes break or a frame is corrupt
     * @throws HandlersException when the reset handler fails
     */
    public function run(): int
    {
        try {
            $this->writer->write(self::controlFrame(['pid' => getmypid(), 'protocol' => self::PROTOCOL]));
        } catch (FrameException $e) {
            throw new FrameException('cannot send the handshake on fd 4: ' . $e->getMessage(), 0, $e);
        }
        $this->captureOutput();
        while (true) {
            if ($this->jobs !== []) {
                $this->reader->wait(); // jobs wait in fetch(): stay where SIGUSR1 can show them
            }
            $frame = $this->reader->read();
            if ($frame === null) {
                break;
            }
            if (($frame->flags & Frame::CONTROL) !== 0) {
                if ($this->control($frame) === false) {
                    return 0;
                }
                continue;
            }
            match (FrameType::tryFrom($frame->options[0] ?? 0)) {
                FrameType::Job => $this->start($frame),
                FrameType::Fetch => $this->answer($frame),
                null => self::log('ignored a frame of unknown type ' . var_export($frame->options[0] ?? null, true)),
            };
        }
        return 0;
    }

    /**
     * Runs when the process ends. If a job's code ends it (exit(), a fatal
     * error such as memory exhausted), send that job's ERROR frame, marked
     * fatal: the aggregator then knows the process is going and why.
     */
    public function onShutdown(): void
    {
        $job = $this->current;
        if ($job === null) {
            return;
        }
        $this->current = null;
        $error = Report::fatalError();
        if ($error !== null) {
            Report::allowShutdownMemory();
            [$failure, $output] = [Report::fatal($error), $job->output()];
        } else {
            $failure = Failure::exit($job->lastWrite());
            // Located, the failure quotes what exit() printed: not twice.
            $output = $failure->file !== '' ? $job->outputBeforeLastWrite() : $job->output();
        }
        try {
            $this->sendResult($job->id, Frame::CODEC_JSON | Frame::ERROR, $failure->json(), $output);
        } catch (\Throwable) {
            // The aggregator will see the process die instead.
        }
    }

    /**
     * The jobs in flight for a backtrace: id => their Fiber, or null for the
     * one running now.
     *
     * @return array<int, ?\Fiber>
     */
    public function inFlight(): array
    {
        $out = [];
        foreach ($this->jobs as $id => $job) {
            $out[$id] = $job === $this->current ? null : $job->fiber;
        }
        return $out;
    }

    /**
     * Answer a control frame.
     *
     * @return bool false when the worker must stop
     */
    private function control(Frame $frame): bool
    {
        $message = json_decode($frame->payload, true);
        if (!is_array($message)) {
            self::log('ignored a control frame that is not a JSON object: ' . substr($frame->payload, 0, 200));
            return true;
        }
        if (isset($message['cancel'])) {
            $this->cancel((int)$message['cancel']);
            return true;
        }
        if (!empty($message['stop'])) {
            return false;
        }
        if (!empty($message['ping'])) {
            $this->writer->write(self::controlFrame(['pong' => true, 'memory' => self::memory(), 'jobs' => count($this->jobs)]));
            return true;
        }
        self::log('ignored an unknown control frame: ' . substr($frame->payload, 0, 200));
        return true;
    }

    /** A new job: run it on a parked Fiber (or a new one) until it ends or waits. */
    private function start(Frame $frame): void
    {
        $fiber = array_pop($this->idle) ?? $this->newFiber();
        $job = new Job((int)($frame->options[1] ?? 0), $frame->options[2] ?? null, $frame->payload, $fiber);
        $this->jobs[$job->id] = $job;
        $this->step($job, $job);
    }

    /** The answer to one fetch() call; the job resumes once all its calls are answered. */
    private function answer(Frame $frame): void
    {
        $job = $this->jobs[(int)($frame->options[1] ?? 0)] ?? null;
        $answers = $job?->answer((int)($frame->options[2] ?? 0), self::fetchAnswer($frame));
        if ($answers !== null) {
            $this->step($job, $answers);
        }
    }

    /**
     * Cancel a job (its time ran out, or its browser left): a job waiting
     * in fetch() gets Cancelled thrown at the call, so its finally blocks
     * run; its ERROR frame then tells the aggregator it is gone.
     */
    private function cancel(int $id): void
    {
        $job = $this->jobs[$id] ?? null;
        if ($job?->cancel() === true) {
            $this->step($job, new Cancelled("job $id cancelled by the aggregator"), true);
        }
    }

    /**
     * Run a job's Fiber until it ends (send its result) or waits for calls
     * (send them); $value starts or resumes it, or is thrown into it.
     */
    private function step(Job $job, mixed $value, bool $throw = false): void
    {
        $fiber = $job->fiber;
        while (true) {
            $this->current = $job;
            try {
                $signal = match (true) {
                    !$fiber->isStarted() => $fiber->start($value),
                    $throw => $fiber->throw($value),
                    default => $fiber->resume($value),
                };
            } finally {
                $this->current = null;
            }
            if (ob_get_level() === 0) {
                $this->captureOutput(); // the handler ended ours
            }
            if ($signal instanceof JobDone) {
                $this->finish($job, $signal);
                return;
            }
            if ($signal instanceof FetchBatch && !$job->isCancelled()) {
                $this->sendCalls($job, $signal);
                return;
            }
            $throw = true;
            $value = $job->isCancelled()
                ? new Cancelled("job $job->id cancelled by the aggregator")
                : new \LogicException('a handler suspended the worker\'s Fiber: wait for suppliers with \Aggregator\fetch()');
        }
    }

    /** A Fiber that runs job after job: it parks between them instead of ending. */
    private function newFiber(): \Fiber
    {
        $fiber = new \Fiber(function (Job $job): void {
            while (true) {
                $job = \Fiber::suspend($this->execute($job));
            }
        });
        Fetch::suspendIn($fiber);
        return $fiber;
    }

    /** Inside the Fiber: call the handler and turn what it did into a result. */
    private function execute(Job $job): JobDone
    {
        try {
            $handler = $this->handlers->forKind(JobKind::fromOption($job->kind));
            $input = json_decode($job->input, true, 512, JSON_THROW_ON_ERROR);
            if (!is_array($input)) {
                self::decodeInput($job->input); // throws what it says
            }
            $answer = $handler($input);
            return new JobDone(Frame::CODEC_RAW, is_string($answer) ? $answer : self::encodeAnswer($answer));
        } catch (\Throwable $e) {
            return new JobDone(Frame::CODEC_JSON | Frame::ERROR, Failure::of($e)->json());
        }
    }

    /** Send a job's fetch() calls to the aggregator. */
    private function sendCalls(Job $job, FetchBatch $batch): void
    {
        foreach ($job->await($batch) as $call => $request) {
            $head = $request->head();
            $this->writer->send(Frame::CODEC_RAW, $head . $request->body, [FrameType::Fetch->value, $job->id, $call, strlen($head)]);
        }
    }

    /** Send a job's result, park its Fiber, run the reset hook. */
    private function finish(Job $job, JobDone $done): void
    {
        unset($this->jobs[$job->id]);
        Http\LastResponse::forget($job->fiber);
        $this->idle[] = $job->fiber;
        $this->sendResult($job->id, $done->flags, $done->payload, $job->output());
        if ($this->handlers->reset !== null) {
            $this->reset();
        }
    }

    /**
     * Buffer what jobs echo, one write at a time (chunk size 1): each
     * write goes to the job that runs now, with the place it came from
     * (that locates an exit('text'), see Failure::exit); output outside a
     * job goes to stdout, which the aggregator logs. A job that echoes
     * nothing costs nothing here.
     */
    private function captureOutput(): void
    {
        ob_start(function (string $buffer): string {
            if ($buffer === '' || $this->current === null) {
                return $buffer;
            }
            $at = debug_backtrace(DEBUG_BACKTRACE_IGNORE_ARGS, 1)[0] ?? [];
            return $this->current->keepOutput($buffer, (string)($at['file'] ?? ''), (int)($at['line'] ?? 0));
        }, 1);
    }

    /** @throws HandlersException when the reset handler throws: the worker's state can no longer be trusted */
    private function reset(): void
    {
        if ($this->handlers->reset === null) {
            return;
        }
        try {
            ($this->handlers->reset)();
        } catch (\Throwable $e) {
            throw new HandlersException(sprintf(
                'the reset handler failed, stopping the worker: %s: %s in %s:%d',
                get_class($e),
                $e->getMessage(),
                $e->getFile(),
                $e->getLine(),
            ), 0, $e);
        }
    }

    /** The answer to one call, as Fetch expects it: a Response, or a NoAnswer when there was none. */
    private static function fetchAnswer(Frame $frame): Response|NoAnswer
    {
        if (($frame->flags & Frame::ERROR) !== 0) {
            return NoAnswer::fromPayload($frame->payload);
        }
        $headLength = (int)($frame->options[3] ?? 0);
        $head = json_decode(substr($frame->payload, 0, $headLength), true);
        if (!is_array($head)) {
            return new NoAnswer('network', 'the aggregator sent an unreadable answer');
        }
        return new Response((int)($head['status'] ?? 0), (array)($head['headers'] ?? []), substr($frame->payload, $headLength), (string)($head['url'] ?? ''));
    }

    /**
     * The job's JSON input as an array.
     *
     * @return mixed[]
     * @throws \JsonException when the payload is not JSON
     * @throws \UnexpectedValueException when it is JSON but not an object or array
     */
    private static function decodeInput(string $payload): array
    {
        $input = json_decode($payload, true, 512, JSON_THROW_ON_ERROR);
        if (!is_array($input)) {
            throw new \UnexpectedValueException('the job input must be a JSON object, got ' . get_debug_type($input));
        }
        return $input;
    }

    /**
     * A handler's answer as bytes: an array is JSON-encoded, a string is sent as-is.
     *
     * @throws \JsonException when the array cannot be encoded (NAN, INF, ...)
     * @throws \UnexpectedValueException when the answer is neither an array nor a string
     */
    private static function encodeAnswer(mixed $answer): string
    {
        if (is_array($answer)) {
            return json_encode($answer, self::JSON_FLAGS | JSON_THROW_ON_ERROR);
        }
        if (!is_string($answer)) {
            throw new \UnexpectedValueException('the handler must return an array or a string, it returned ' . get_debug_type($answer));
        }
        return $answer;
    }

    /**
     * Send a result frame: options [JOB, id, memory, bytes of stray output];
     * the payload is the answer (or ERROR JSON) followed by that output.
     */
    private function sendResult(int $id, int $flags, string $payload, string $output): void
    {
        $memory = min(memory_get_usage(true), Frame::MAX_UINT32); // self::memory(), inline: once per job
        $this->writer->send($flags, $output === '' ? $payload : $payload . $output, [FrameType::Job->value, $id, $memory, strlen($output)]);
    }

    /** @param mixed[] $message */
    private static function controlFrame(array $message): Frame
    {
        return new Frame(Frame::CONTROL | Frame::CODEC_JSON, (string)json_encode($message, self::JSON_FLAGS));
    }

    /** memory_get_usage(true), capped to fit a uint32 option. */
    private static function memory(): int
    {
        return min(memory_get_usage(true), Frame::MAX_UINT32);
    }

    /**
     * The handlers file: argv[1], else env AGGREGATOR_HANDLERS. A relative path
     * is taken from the working directory, or else from $baseDir.
     */
    private static function handlersPath(array $argv, string $baseDir): string
    {
        $path = (string)($argv[1] ?? '');
        if ($path === '') {
            $path = (string)getenv('AGGREGATOR_HANDLERS');
        }
        if ($path === '' || str_starts_with($path, '/') || file_exists($path)) {
            return $path;
        }
        $fromBase = rtrim($baseDir, '/') . '/' . $path;
        return file_exists($fromBase) ? $fromBase : $path;
    }

    /**
     * Open an inherited file descriptor as a stream. It must be a pipe or a
     * socket: when the aggregator did not pass fds 3 and 4, those numbers may
     * belong to files PHP itself opened (such as worker.php).
     *
     * @return resource
     * @throws FrameException when the descriptor is not open or not a pipe/socket
     */
    private static function openFd(int $fd, string $mode)
    {
        $hint = 'the worker must be started by the aggregator, with fd 3 (jobs in) and fd 4 (results out) as pipes';
        $stream = @fopen("php://fd/$fd", $mode);
        if ($stream === false) {
            throw new FrameException("cannot open file descriptor $fd: $hint");
        }
        $type = (fstat($stream)['mode'] ?? 0) & 0170000;
        if ($type !== 0010000 && $type !== 0140000) {
            throw new FrameException("file descriptor $fd is not a pipe or a socket: $hint");
        }
        return $stream;
    }

    /** One line to stderr, which the aggregator logs with this worker's pid. */
    private static function log(string $message): void
    {
        fwrite(STDERR, 'worker: ' . str_replace("\n", ' ', $message) . "\n");
    }
}

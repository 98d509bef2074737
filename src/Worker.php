<?php

declare(strict_types=1);

namespace Aggregator;

/**
 * The long-lived PHP worker: reads jobs from fd 3, runs a handler, writes the
 * result to fd 4. The conversation is described in docs/PROTOCOL.md.
 *
 * stdout and stderr are never used for frames: whatever a handler echoes or
 * logs there ends up in the aggregator's log.
 */
final class Worker
{
    /** json_encode flags for a handler's array answer. */
    public const JSON_FLAGS = JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE;

    /** Error types that end the process (a shutdown function still runs). */
    private const FATAL_ERRORS = E_ERROR | E_CORE_ERROR | E_COMPILE_ERROR | E_USER_ERROR | E_PARSE;

    /** Extra memory allowed to the shutdown function so it can report "memory exhausted". */
    private const SHUTDOWN_MEMORY = 8 << 20;

    /** True from reading a job until its result is written. */
    private bool $inJob = false;

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
        // SIGUSR1 prints the running job's backtrace to stderr (slowlog, and
        // before a timeout kill); see Backtrace.php.
        Backtrace::install();
        try {
            $in = self::openFd(3, 'rb');
            $out = self::openFd(4, 'wb');
            $handlers = Handlers::load(self::handlersPath($argv, $baseDir));
            $worker = new self($handlers, new FrameReader($in), new FrameWriter($out));
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
            $this->writer->write(self::controlFrame(['pid' => getmypid()]));
        } catch (FrameException $e) {
            throw new FrameException('cannot send the handshake on fd 4: ' . $e->getMessage(), 0, $e);
        }
        while (($frame = $this->reader->read()) !== null) {
            if ($frame->has(Frame::CONTROL)) {
                if ($this->handleControl($frame) === false) {
                    return 0;
                }
                continue;
            }
            $this->handleJob($frame);
        }
        return 0;
    }

    /**
     * Runs when the process ends. If that happens during a job because of a
     * fatal error (memory exhausted, ...), try to send the job's ERROR frame.
     */
    public function onShutdown(): void
    {
        if (!$this->inJob) {
            return;
        }
        $this->inJob = false;
        $error = error_get_last();
        if ($error === null || ($error['type'] & self::FATAL_ERRORS) === 0) {
            self::log('the process is exiting in the middle of a job (did the handler call exit()?)');
            return;
        }
        self::allowShutdownMemory();
        self::log(sprintf('job failed: fatal error: %s in %s:%d', $error['message'], $error['file'], $error['line']));
        try {
            $this->writer->write(self::errorFrame([
                'error' => $error['message'],
                'class' => 'FatalError',
                'file' => $error['file'],
                'line' => $error['line'],
                'trace' => '',
            ]));
        } catch (\Throwable) {
            // The aggregator will see the process die instead.
        }
    }

    /**
     * Answer a control frame.
     *
     * @return bool false when the worker must stop
     */
    private function handleControl(Frame $frame): bool
    {
        $message = json_decode($frame->payload, true);
        if (!is_array($message)) {
            self::log('ignored a control frame that is not a JSON object: ' . substr($frame->payload, 0, 200));
            return true;
        }
        if (!empty($message['stop'])) {
            return false;
        }
        if (!empty($message['ping'])) {
            $this->writer->write(self::controlFrame(['pong' => true, 'memory' => self::memory()]));
            return true;
        }
        self::log('ignored an unknown control frame: ' . substr($frame->payload, 0, 200));
        return true;
    }

    /** Run one job, send its result, then call the reset handler. */
    private function handleJob(Frame $job): void
    {
        $this->inJob = true;
        $result = $this->runJob($job);
        $this->writer->write($result);
        $this->inJob = false;
        $this->reset();
    }

    /** The result frame of a job: the handler's answer, or an ERROR frame. */
    private function runJob(Frame $job): Frame
    {
        try {
            $handler = $this->handlers->forKind($job->option(0));
            $answer = $handler(self::decodeInput($job->payload));
            return self::resultFrame($answer);
        } catch (\Throwable $e) {
            self::log(sprintf('job failed: %s: %s in %s:%d', get_class($e), $e->getMessage(), $e->getFile(), $e->getLine()));
            return self::errorFrame(self::describe($e));
        }
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
     * A success frame: an array answer is JSON-encoded, a string is sent as-is.
     *
     * @throws \JsonException when the array cannot be encoded (NAN, INF, ...)
     * @throws \UnexpectedValueException when the answer is neither an array nor a string
     */
    private static function resultFrame(mixed $answer): Frame
    {
        if (is_array($answer)) {
            $answer = json_encode($answer, self::JSON_FLAGS | JSON_THROW_ON_ERROR);
        } elseif (!is_string($answer)) {
            throw new \UnexpectedValueException('the handler must return an array or a string, it returned ' . get_debug_type($answer));
        }
        return new Frame(Frame::CODEC_RAW, $answer, [self::memory()]);
    }

    /** @param array{error: string, class: string, file: string, line: int, trace: string} $error */
    private static function errorFrame(array $error): Frame
    {
        $payload = json_encode($error, self::JSON_FLAGS | JSON_PARTIAL_OUTPUT_ON_ERROR);
        return new Frame(Frame::CODEC_JSON | Frame::ERROR, (string)$payload, [self::memory()]);
    }

    /** @param mixed[] $message */
    private static function controlFrame(array $message): Frame
    {
        return new Frame(Frame::CONTROL | Frame::CODEC_JSON, (string)json_encode($message, self::JSON_FLAGS));
    }

    /**
     * The ERROR payload of a Throwable; the trace lists the previous exceptions too.
     *
     * @return array{error: string, class: string, file: string, line: int, trace: string}
     */
    private static function describe(\Throwable $e): array
    {
        $trace = $e->getTraceAsString();
        for ($cause = $e->getPrevious(); $cause !== null; $cause = $cause->getPrevious()) {
            $trace .= sprintf("\nCaused by %s: %s in %s:%d\n%s", get_class($cause), $cause->getMessage(), $cause->getFile(), $cause->getLine(), $cause->getTraceAsString());
        }
        return [
            'error' => $e->getMessage(),
            'class' => get_class($e),
            'file' => $e->getFile(),
            'line' => $e->getLine(),
            'trace' => $trace,
        ];
    }

    /** memory_get_usage(true), capped to fit a uint32 option. */
    private static function memory(): int
    {
        return min(memory_get_usage(true), Frame::MAX_UINT32);
    }

    /** After "memory exhausted" nothing can be allocated: raise the limit a little for the report. */
    private static function allowShutdownMemory(): void
    {
        if (ini_get('memory_limit') !== '-1') {
            @ini_set('memory_limit', (string)(memory_get_usage(true) + self::SHUTDOWN_MEMORY));
        }
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

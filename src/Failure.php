<?php

declare(strict_types=1);

namespace Aggregator;

/**
 * A handler's failure as the aggregator reads it: a throwable, a fatal
 * error or exit() in the middle of a job, with the class, message, place
 * and trace, and whether the customer may see the message. The worker
 * sends it in a job's ERROR frame, an exec script through its report pipe
 * (Report.php); the aggregator logs it as one "handler failed" line and
 * `aggregator call` prints it. Nothing parses PHP's text.
 */
final readonly class Failure
{
    /** Never fails: invalid UTF-8 becomes U+FFFD, a part that cannot be encoded is left out. */
    public const JSON_FLAGS = JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE | JSON_PARTIAL_OUTPUT_ON_ERROR;

    /** Bytes of what exit() printed that its failure quotes. */
    private const QUOTED = 500;

    /**
     * @param bool    $public the message may reach the customer (a PublicError)
     * @param bool    $fatal  the process is ending (a fatal error, exit())
     * @param ?string $hint   what to do about it, when PHP knows
     */
    public function __construct(
        public string $error,
        public string $class,
        public string $file,
        public int $line,
        public string $trace = '',
        public bool $public = false,
        public bool $fatal = false,
        public ?string $hint = null,
    ) {
    }

    /** A throwable; the trace lists its previous exceptions too. */
    public static function of(\Throwable $e): self
    {
        $trace = $e->getTraceAsString();
        for ($cause = $e->getPrevious(); $cause !== null; $cause = $cause->getPrevious()) {
            $trace .= sprintf("\nCaused by %s: %s in %s:%d\n%s", get_class($cause), $cause->getMessage(), $cause->getFile(), $cause->getLine(), $cause->getTraceAsString());
        }
        return new self($e->getMessage(), get_class($e), $e->getFile(), $e->getLine(), $trace, $e instanceof PublicError);
    }

    /**
     * A fatal error (error_get_last() at shutdown), with a hint for
     * "memory exhausted".
     *
     * @param array{type: int, message: string, file: string, line: int} $error
     * @param string $memoryLimit memory_limit as the process started
     */
    public static function fatalError(array $error, string $memoryLimit): self
    {
        $hint = null;
        if (str_starts_with($error['message'], 'Allowed memory size')) {
            $hint = sprintf(
                'memory_limit is %s: it comes from -d memory_limit=… in aggregator.worker.command (worker mode) '
                . 'or the script command (exec mode), else php.ini; raise it there, or make the handler hold less',
                $memoryLimit,
            );
        }
        return new self($error['message'], 'FatalError', $error['file'], $error['line'], '', false, true, $hint);
    }

    /**
     * exit() (or die()) in the middle of a job. PHP 8.2 does not say where
     * it was called (a Fiber that exits is terminated before the shutdown
     * functions run, so ReflectionFiber has nothing to show), but
     * exit('text') prints its text like an echo, and the worker notes
     * where each write of a job's output comes from: when the job's last
     * write comes from a line that calls exit() or die(), that is the place
     * and that is the text.
     *
     * @param ?OutputWrite $last the job's last write of output, if any
     */
    public static function exit(?OutputWrite $last): self
    {
        $error = 'the handler called exit() in the middle of a job';
        if ($last === null) {
            return new self($error, 'Exit', '', 0, '', false, true);
        }
        if (!$last->callsExit()) {
            return new self("$error (its last output was written at $last->file:$last->line)", 'Exit', '', 0, '', false, true);
        }
        $text = strlen($last->text) > self::QUOTED ? substr($last->text, 0, self::QUOTED) . '…' : $last->text;
        return new self($error . ': ' . json_encode($text, self::JSON_FLAGS), 'Exit', $last->file, $last->line, '', false, true);
    }

    /** The failure as JSON: the payload of a job's ERROR frame (docs/PROTOCOL.md). */
    public function json(): string
    {
        $out = ['error' => $this->error, 'class' => $this->class, 'file' => $this->file, 'line' => $this->line, 'trace' => $this->trace];
        if ($this->public) {
            $out['public'] = true;
        }
        if ($this->fatal) {
            $out['fatal'] = true;
        }
        if ($this->hint !== null) {
            $out['hint'] = $this->hint;
        }
        return (string)json_encode($out, self::JSON_FLAGS);
    }

    /** The failure as a person reads it (exec mode run by hand). */
    public function text(): string
    {
        $text = sprintf('%s: %s in %s:%d', $this->class, $this->error, $this->file, $this->line);
        if ($this->trace !== '') {
            $text .= "\n" . $this->trace;
        }
        if ($this->hint !== null) {
            $text .= "\nhint: " . $this->hint;
        }
        return $text;
    }
}

<?php

declare(strict_types=1);

namespace Aggregator;

use Aggregator\Http\Request;

/**
 * One job in flight in a worker: what it was given, the Fiber running it,
 * the fetch() calls it waits for, and what it echoed. Its state changes
 * only through these methods: a job runs, waits for the calls of one batch
 * (await), resumes once the last of them is answered (answer), and may be
 * cancelled on the way (cancel).
 *
 * @internal
 */
final class Job
{
    /** @var array<int, int> call id => index in the batch, for the calls not answered yet */
    private array $calls = [];

    /** @var array<int, Response|NoAnswer> answers by index in the batch */
    private array $answers = [];

    private int $lastCall = 0;

    private bool $cancelled = false;

    /** What the handler echoed, sent with its result (at most Worker::MAX_JOB_OUTPUT bytes). */
    private string $output = '';

    private ?OutputWrite $lastWrite = null;

    /**
     * @param ?int $kind option 2 of its frame, as it came (JobKind::fromOption() checks it)
     */
    public function __construct(
        public readonly int $id,
        public readonly ?int $kind,
        public readonly string $input,
        public readonly \Fiber $fiber,
    ) {
    }

    /**
     * Wait for the calls of a batch: each gets a call id unique in this job.
     *
     * @return array<int, Request> call id => request
     */
    public function await(FetchBatch $batch): array
    {
        $numbered = [];
        foreach ($batch->requests as $index => $request) {
            $call = ++$this->lastCall;
            $this->calls[$call] = $index;
            $numbered[$call] = $request;
        }
        return $numbered;
    }

    /**
     * Take the answer to one call.
     *
     * @return list<Response|NoAnswer>|null the batch's answers in order once this was the last one, else null
     */
    public function answer(int $call, Response|NoAnswer $answer): ?array
    {
        if (!isset($this->calls[$call])) {
            return null; // not a call it waits for (cancelled meanwhile)
        }
        $this->answers[$this->calls[$call]] = $answer;
        unset($this->calls[$call]);
        if ($this->calls !== []) {
            return null;
        }
        ksort($this->answers);
        $answers = array_values($this->answers);
        $this->answers = [];
        return $answers;
    }

    /**
     * Mark the job cancelled (its time ran out, or its browser left).
     *
     * @return bool whether it waited in fetch(): its calls are dropped, and
     *              the worker throws Cancelled into it; false when it was
     *              already cancelled
     */
    public function cancel(): bool
    {
        if ($this->cancelled) {
            return false;
        }
        $this->cancelled = true;
        if ($this->calls === []) {
            return false;
        }
        $this->calls = [];
        $this->answers = [];
        return true;
    }

    public function isCancelled(): bool
    {
        return $this->cancelled;
    }

    /**
     * Keep one write of the job's output and where it came from.
     *
     * @return string what does not fit in Worker::MAX_JOB_OUTPUT: it goes to stdout (the log) instead
     */
    public function keepOutput(string $text, string $file, int $line): string
    {
        $this->lastWrite = new OutputWrite($text, $file, $line);
        $room = Worker::MAX_JOB_OUTPUT - strlen($this->output);
        if (strlen($text) <= $room) {
            $this->output .= $text;
            return '';
        }
        $this->output .= substr($text, 0, max(0, $room));
        return substr($text, max(0, $room));
    }

    /** What the job echoed. */
    public function output(): string
    {
        return $this->output;
    }

    /** The last write of its output, if any. */
    public function lastWrite(): ?OutputWrite
    {
        return $this->lastWrite;
    }

    /** Its output without the text of its last write (when exit() printed it, its failure quotes it). */
    public function outputBeforeLastWrite(): string
    {
        $text = $this->lastWrite?->text ?? '';
        return $text !== '' && str_ends_with($this->output, $text) ? substr($this->output, 0, -strlen($text)) : $this->output;
    }
}

<?php

declare(strict_types=1);

namespace Aggregator\Tests;

use Aggregator\Frame;
use Aggregator\FrameType;
use PHPUnit\Framework\Assert;

/**
 * A job's result frame, split: options [JOB, id, memory, stray bytes],
 * payload = the answer (or ERROR JSON) followed by the job's stray output.
 */
final class WorkerResult
{
    private function __construct(
        public readonly int $id,
        public readonly int $flags,
        public readonly string $payload,
        public readonly string $output,
        public readonly int $memory,
    ) {
    }

    public static function fromFrame(?Frame $frame): self
    {
        Assert::assertNotNull($frame, 'the worker closed fd 4 instead of answering');
        Assert::assertSame(FrameType::Job->value, $frame->option(0), 'a result frame; got options ' . json_encode($frame->options) . ' ' . $frame->payload);
        Assert::assertCount(4, $frame->options, 'options: type, id, memory, stray output bytes');
        $split = strlen($frame->payload) - (int)$frame->option(3);
        return new self((int)$frame->option(1), $frame->flags, substr($frame->payload, 0, $split), substr($frame->payload, $split), (int)$frame->option(2));
    }

    public function isError(): bool
    {
        return ($this->flags & Frame::ERROR) !== 0;
    }

    /** @return array<string, mixed> the decoded ERROR payload */
    public function error(): array
    {
        Assert::assertSame(Frame::CODEC_JSON | Frame::ERROR, $this->flags, 'error flags; payload: ' . $this->payload);
        $error = json_decode($this->payload, true);
        Assert::assertIsArray($error, $this->payload);
        return $error;
    }

    /** @return mixed[] the decoded answer */
    public function json(): array
    {
        Assert::assertSame(Frame::CODEC_RAW, $this->flags, 'success flags; payload: ' . $this->payload);
        $answer = json_decode($this->payload, true);
        Assert::assertIsArray($answer, $this->payload);
        return $answer;
    }
}

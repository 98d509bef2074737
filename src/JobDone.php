<?php

declare(strict_types=1);

namespace Aggregator;

/**
 * What a job's Fiber hands the worker when the job is over: the result
 * frame's flags (CODEC_RAW, or CODEC_JSON|ERROR) and payload.
 *
 * @internal
 */
final readonly class JobDone
{
    public function __construct(
        public int $flags,
        public string $payload,
    ) {
    }
}

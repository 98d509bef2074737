<?php

declare(strict_types=1);

namespace Aggregator;

use Aggregator\Http\Request;

/**
 * The calls a job waits for: what its Fiber hands the worker when it suspends
 * in fetch(). The worker resumes it with one answer per call, in order: a
 * Response, or ['cause' => ..., 'message' => ...] for no answer.
 *
 * @internal
 */
final class FetchBatch
{
    /** @param list<Request> $requests */
    public function __construct(public readonly array $requests)
    {
    }
}

<?php

declare(strict_types=1);

namespace Aggregator;

use Aggregator\Http\Request;

/**
 * The calls a job waits for: what its Fiber hands the worker when it
 * suspends in fetch(). The worker resumes it with one answer per call, in
 * order: a Response, or a NoAnswer when there was none.
 *
 * @internal
 */
final readonly class FetchBatch
{
    /**
     * @param list<Request> $requests at least one
     * @throws \InvalidArgumentException for an empty batch or one that holds anything but Requests
     */
    public function __construct(public array $requests)
    {
        if ($requests === [] || !array_is_list($requests)) {
            throw new \InvalidArgumentException('a FetchBatch is a non-empty list of Requests');
        }
        foreach ($requests as $request) {
            if (!$request instanceof Request) {
                throw new \InvalidArgumentException('a FetchBatch holds Requests, got ' . get_debug_type($request));
            }
        }
    }
}

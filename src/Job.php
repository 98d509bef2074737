<?php

declare(strict_types=1);

namespace Aggregator;

/**
 * One job in flight in a worker: its input, the Fiber running it, and the
 * fetch() calls it waits for.
 *
 * @internal
 */
final class Job
{
    public ?\Fiber $fiber = null;

    /** @var array<int, int> call id => index in the batch, for the calls not answered yet */
    public array $calls = [];

    /** @var array<int, Response|NoAnswer> answers by index */
    public array $answers = [];

    public int $lastCall = 0;

    public bool $cancelled = false;

    /** What the handler echoed, sent with its result. */
    public string $output = '';

    public function __construct(
        public readonly int $id,
        public readonly ?int $kind,
        public readonly string $input,
    ) {
    }
}

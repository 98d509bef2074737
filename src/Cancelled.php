<?php

declare(strict_types=1);

namespace Aggregator;

/**
 * Thrown into a job that waits in fetch() when the aggregator cancels it
 * (its time ran out, or its browser left), so that its finally blocks run.
 * An \Error, not an \Exception: `catch (\Exception $e)` in a translator
 * does not swallow it.
 */
final class Cancelled extends \Error
{
}

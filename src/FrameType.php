<?php

declare(strict_types=1);

namespace Aggregator;

/**
 * What a frame that is not a CONTROL frame carries: option 0 (docs/PROTOCOL.md).
 */
enum FrameType: int
{
    /** A job (Go -> PHP) and its result (PHP -> Go). */
    case Job = 1;

    /** A fetch() call (PHP -> Go) and its answer (Go -> PHP). */
    case Fetch = 2;
}

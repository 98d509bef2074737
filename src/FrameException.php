<?php

declare(strict_types=1);

namespace Aggregator;

/**
 * A frame could not be read or written: the stream ended mid-frame, the
 * header is malformed, or the pipe is broken.
 */
class FrameException extends \RuntimeException
{
}

<?php

declare(strict_types=1);

namespace Aggregator;

/**
 * A frame header's CRC32 does not match its bytes 0-5: the stream is corrupt
 * or out of step, and nothing after this point can be trusted.
 */
final class CrcMismatchException extends FrameException
{
}

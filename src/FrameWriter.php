<?php

declare(strict_types=1);

namespace Aggregator;

/**
 * Writes goridge v3 frames to a stream.
 *
 * fwrite() on a pipe may write only part of the data, so every write loops
 * until all bytes are out.
 */
final class FrameWriter
{
    /** Largest single fwrite(); big payloads are written in pieces of this size. */
    private const CHUNK = 1 << 20;

    /** @var resource */
    private $stream;

    /** @param resource $stream a writable stream */
    public function __construct($stream)
    {
        if (!is_resource($stream)) {
            throw new \InvalidArgumentException('FrameWriter needs an open stream');
        }
        $this->stream = $stream;
    }

    /**
     * Write one frame and flush it.
     *
     * @throws FrameException when the stream is closed or broken
     */
    public function write(Frame $frame): void
    {
        // Header and payload go out separately so a large payload is never copied.
        $this->writeAll($frame->encodeHeader());
        $this->writeAll($frame->payload);
        fflush($this->stream);
    }

    /** @throws FrameException */
    private function writeAll(string $bytes): void
    {
        $length = strlen($bytes);
        $written = 0;
        while ($written < $length) {
            $chunk = $written === 0 && $length <= self::CHUNK ? $bytes : substr($bytes, $written, self::CHUNK);
            error_clear_last();
            $count = @fwrite($this->stream, $chunk);
            if ($count === false || $count === 0) {
                $reason = error_get_last()['message'] ?? 'unknown error';
                throw new FrameException("write failed after $written of $length bytes: $reason");
            }
            $written += $count;
        }
    }
}

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

    /** Payloads up to this size go out in one write with their header. */
    private const JOIN = 1 << 16;

    /**
     * Write one frame. PHP streams do not buffer writes: it is on its way
     * (in the pipe) when this returns.
     *
     * @throws FrameException when the stream is closed or broken
     */
    public function write(Frame $frame): void
    {
        $this->send($frame->flags, $frame->payload, $frame->options);
    }

    /**
     * Write a frame of these fields (valid: flags 0-255, at most 12 uint32
     * options) without making a Frame: the worker's result frames.
     *
     * @param int[] $options
     * @throws FrameException when the stream is closed or broken
     * @internal
     */
    public function send(int $flags, string $payload, array $options): void
    {
        $header = Frame::header($flags, strlen($payload), $options);
        if (strlen($payload) <= self::JOIN) {
            // One write(2): the aggregator wakes once per frame, not twice.
            $bytes = $header . $payload;
            error_clear_last();
            $count = @fwrite($this->stream, $bytes);
            if ($count !== strlen($bytes)) {
                $this->writeAll($bytes, $count === false ? 0 : $count);
            }
        } else {
            // A large payload is not copied; it goes out after its header.
            $this->writeAll($header);
            $this->writeAll($payload);
        }
    }

    /**
     * Write $bytes from offset $written on.
     *
     * @throws FrameException
     */
    private function writeAll(string $bytes, int $written = 0): void
    {
        $length = strlen($bytes);
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

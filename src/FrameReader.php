<?php

declare(strict_types=1);

namespace Aggregator;

/**
 * Reads goridge v3 frames from a stream (a pipe, a file, php://memory).
 *
 * Pipes may return fewer bytes than asked for, so every read loops until it
 * has all the bytes it needs.
 */
final class FrameReader
{
    /** Largest single fread(); big payloads are read in pieces of this size. */
    private const CHUNK = 1 << 20;

    /** @var resource */
    private $stream;

    /** @param resource $stream a readable stream */
    public function __construct($stream)
    {
        if (!is_resource($stream)) {
            throw new \InvalidArgumentException('FrameReader needs an open stream');
        }
        $this->stream = $stream;
    }

    /**
     * Read the next frame.
     *
     * @return Frame|null null when the stream ended cleanly before a new frame
     * @throws CrcMismatchException when the header CRC is wrong
     * @throws FrameException       when the stream ends mid-frame or fails
     */
    public function read(): ?Frame
    {
        // Usually one fread() from the stream's buffer has each part.
        $header = fread($this->stream, Frame::HEADER_SIZE);
        if ($header === false || strlen($header) !== Frame::HEADER_SIZE) {
            $header = $this->readRest($header, Frame::HEADER_SIZE, 'frame header', true);
            if ($header === null) {
                return null;
            }
        }
        // Frame::parseHeader()'s checks, inline (this runs for every job):
        // a header that fails any goes to it for the exception.
        $h = unpack('Cfirst/Cflags/Vlength/Vcrc', $header);
        $words = ($h['first'] & 0x0F) - 3;
        if ($h['crc'] !== crc32(substr($header, 0, 6)) || ($h['first'] >> 4) !== Frame::VERSION || $words < 0) {
            Frame::parseHeader($header);
        }
        if ($words === 0) {
            return Frame::trusted($h['flags'], $this->readExactly($h['length'], 'frame payload'), []);
        }
        $size = $words * 4 + $h['length'];
        $rest = fread($this->stream, min($size, self::CHUNK)); // options and payload
        if ($rest === false || strlen($rest) !== $size) {
            $rest = (string)$this->readRest($rest, $size, 'frame options and payload');
        }
        return Frame::trusted($h['flags'], (string)substr($rest, $words * 4), array_values(unpack("V$words", $rest)));
    }

    /**
     * Wait until a frame can be read (or the stream ended). Unlike a read
     * blocked in the kernel, a wait here lets signal handlers run (SIGUSR1:
     * the backtrace of jobs waiting in fetch()).
     */
    public function wait(): void
    {
        do {
            $read = [$this->stream];
            $write = $except = null;
            $ready = @stream_select($read, $write, $except, null);
        } while ($ready === 0 || ($ready === false && is_resource($this->stream) && !feof($this->stream) && $this->interrupted()));
    }

    /** Whether the last stream_select() was cut short by a signal (as opposed to failing). */
    private function interrupted(): bool
    {
        $error = error_get_last()['message'] ?? '';
        error_clear_last();
        return str_contains($error, 'Interrupted system call') || $error === '';
    }

    /**
     * Read exactly $length bytes.
     *
     * @param bool $eofAllowed return null instead of failing when EOF comes before the first byte
     * @throws FrameException on EOF after the first byte, or on a read error
     */
    private function readExactly(int $length, string $what, bool $eofAllowed = false): ?string
    {
        if ($length === 0) {
            return '';
        }
        return $this->readRest(fread($this->stream, min($length, self::CHUNK)), $length, $what, $eofAllowed);
    }

    /**
     * Read what is missing of $length bytes after a first fread() gave $first.
     *
     * @throws FrameException on EOF after the first byte, or on a read error
     */
    private function readRest(string|false $first, int $length, string $what, bool $eofAllowed = false): ?string
    {
        if ($first === false) {
            throw new FrameException("read error while reading the $what (0 of $length bytes read)");
        }
        if (strlen($first) === $length) {
            return $first;
        }
        $parts = $first === '' ? [] : [$first];
        $got = strlen($first);
        while ($got < $length) {
            $part = fread($this->stream, min($length - $got, self::CHUNK));
            if ($part === false) {
                throw new FrameException("read error while reading the $what ($got of $length bytes read)");
            }
            if ($part === '') {
                if (feof($this->stream)) {
                    if ($got === 0 && $eofAllowed) {
                        return null;
                    }
                    throw new FrameException("unexpected end of stream in the middle of the $what ($got of $length bytes read)");
                }
                continue; // an interrupted read; try again
            }
            $parts[] = $part;
            $got += strlen($part);
        }
        return implode('', $parts);
    }
}

<?php

declare(strict_types=1);

namespace Aggregator;

/**
 * One goridge v3 frame: flags, up to 12 uint32 options and a payload.
 *
 * Wire layout (see docs/PROTOCOL.md):
 *   byte 0      version << 4 | hl   (version 1, hl = header length in 32-bit words = 3 + options)
 *   byte 1      flags
 *   bytes 2-5   payload length, uint32 little endian
 *   bytes 6-9   CRC32 (IEEE) of bytes 0-5, little endian
 *   bytes 10-11 stream flags, always 0
 *   then the options (uint32 LE each), then the payload.
 */
final class Frame
{
    public const VERSION = 1;

    /** Size of the fixed part of the header, in bytes. */
    public const HEADER_SIZE = 12;

    /** hl is 4 bits wide, so at most 15 - 3 = 12 options fit. */
    public const MAX_OPTIONS = 12;

    public const MAX_UINT32 = 0xFFFFFFFF;

    public const CONTROL = 0x01;
    public const CODEC_RAW = 0x04;
    public const CODEC_JSON = 0x08;
    public const ERROR = 0x40;

    /**
     * @param int      $flags   a combination of the flag constants (0-255)
     * @param string   $payload raw bytes
     * @param int[]    $options uint32 values
     */
    public function __construct(
        public readonly int $flags,
        public readonly string $payload = '',
        public readonly array $options = [],
    ) {
        if ($flags < 0 || $flags > 0xFF) {
            throw new \InvalidArgumentException("frame flags must fit in one byte, got $flags");
        }
        if ($options !== []) {
            self::checkOptions($options);
        }
        if (strlen($payload) > self::MAX_UINT32) {
            throw new \InvalidArgumentException('payload is longer than 4 GiB');
        }
    }

    /** @var \ReflectionClass<self>|null for trusted() */
    private static ?\ReflectionClass $class = null;

    /**
     * A frame of fields already known to be valid (FrameReader: read off
     * the wire), without the constructor's checks: a worker reads one per job.
     *
     * @param int[] $options
     * @internal
     */
    public static function trusted(int $flags, string $payload, array $options): self
    {
        $frame = (self::$class ??= new \ReflectionClass(self::class))->newInstanceWithoutConstructor();
        $frame->flags = $flags;
        $frame->payload = $payload;
        $frame->options = $options;
        return $frame;
    }

    /** Whether every bit of $flag is set. */
    public function has(int $flag): bool
    {
        return ($this->flags & $flag) === $flag;
    }

    /** Option number $index, or null when the frame has fewer options. */
    public function option(int $index): ?int
    {
        return $this->options[$index] ?? null;
    }

    /** The header and options (everything before the payload). */
    public function encodeHeader(): string
    {
        return self::header($this->flags, strlen($this->payload), $this->options);
    }

    /**
     * The header and options of a frame with these (valid) fields.
     *
     * @param int[] $options
     * @internal
     */
    public static function header(int $flags, int $length, array $options): string
    {
        $first6 = pack('CCV', (self::VERSION << 4) | (3 + count($options)), $flags, $length);
        return $options === []
            ? $first6 . pack('Vv', crc32($first6), 0)
            : $first6 . pack('VvV*', crc32($first6), 0, ...$options);
    }

    /** The whole frame as bytes. */
    public function encode(): string
    {
        return $this->encodeHeader() . $this->payload;
    }

    /**
     * Decode one complete frame held in a string (no trailing bytes allowed).
     *
     * @throws FrameException on a malformed or truncated frame
     */
    public static function decode(string $bytes): self
    {
        $header = self::parseHeader(substr($bytes, 0, self::HEADER_SIZE));
        $optionsSize = $header['options'] * 4;
        $expected = self::HEADER_SIZE + $optionsSize + $header['length'];
        if (strlen($bytes) !== $expected) {
            throw new FrameException(sprintf('frame should be %d bytes, got %d', $expected, strlen($bytes)));
        }
        $options = self::parseOptions(substr($bytes, self::HEADER_SIZE, $optionsSize));
        return new self($header['flags'], substr($bytes, self::HEADER_SIZE + $optionsSize), $options);
    }

    /**
     * Check and split the 12-byte fixed header.
     *
     * @return array{flags: int, options: int, length: int}
     * @throws CrcMismatchException when the CRC is wrong
     * @throws FrameException       on a wrong size, version or header length
     */
    public static function parseHeader(string $header): array
    {
        if (strlen($header) !== self::HEADER_SIZE) {
            throw new FrameException(sprintf('frame header must be %d bytes, got %d', self::HEADER_SIZE, strlen($header)));
        }
        $fields = unpack('Cfirst/Cflags/Vlength/Vcrc', $header);
        $actual = crc32(substr($header, 0, 6));
        if ($fields['crc'] !== $actual) {
            throw new CrcMismatchException(sprintf(
                'frame header CRC mismatch: header says 0x%08x, bytes 0-5 (%s) give 0x%08x',
                $fields['crc'],
                bin2hex(substr($header, 0, 6)),
                $actual,
            ));
        }
        $version = $fields['first'] >> 4;
        $hl = $fields['first'] & 0x0F;
        if ($version !== self::VERSION) {
            throw new FrameException(sprintf('unsupported frame version %d (expected %d)', $version, self::VERSION));
        }
        if ($hl < 3) {
            throw new FrameException(sprintf('frame header length %d words is below the minimum of 3', $hl));
        }
        return ['flags' => $fields['flags'], 'options' => $hl - 3, 'length' => $fields['length']];
    }

    /**
     * Split option bytes into uint32 values.
     *
     * @return int[]
     */
    public static function parseOptions(string $bytes): array
    {
        return $bytes === '' ? [] : array_values(unpack('V*', $bytes));
    }

    /** @param mixed[] $options */
    private static function checkOptions(array $options): void
    {
        if (count($options) > self::MAX_OPTIONS) {
            throw new \InvalidArgumentException(sprintf('a frame holds at most %d options, got %d', self::MAX_OPTIONS, count($options)));
        }
        if (!array_is_list($options)) {
            throw new \InvalidArgumentException('frame options must be a list');
        }
        foreach ($options as $option) {
            if (!is_int($option) || ($option & ~self::MAX_UINT32) !== 0) {
                throw new \InvalidArgumentException('frame options must be integers from 0 to 2^32-1');
            }
        }
    }
}

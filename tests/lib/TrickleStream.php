<?php

declare(strict_types=1);

namespace Aggregator\Tests;

/**
 * A stream wrapper ("trickle://") over an in-memory buffer that reads and
 * writes at most a few bytes per call, like a slow pipe. It counts the calls
 * so tests can check that partial reads really happened.
 */
final class TrickleStream
{
    public const SCHEME = 'trickle';

    /** Bytes handed out (reads) or collected (writes). */
    public static string $buffer = '';

    /** Most bytes moved per read/write call. */
    public static int $step = 3;

    public static int $reads = 0;
    public static int $writes = 0;

    /** @var resource|null set by PHP for every wrapper instance */
    public $context;

    private int $position = 0;

    /** Register the wrapper once and reset the buffer and the counters. */
    public static function reset(string $buffer = '', int $step = 3): void
    {
        if (!in_array(self::SCHEME, stream_get_wrappers(), true)) {
            stream_wrapper_register(self::SCHEME, self::class);
        }
        self::$buffer = $buffer;
        self::$step = $step;
        self::$reads = 0;
        self::$writes = 0;
    }

    public function stream_open(string $path, string $mode, int $options, ?string &$openedPath): bool
    {
        $this->position = 0;
        return true;
    }

    public function stream_read(int $count): string
    {
        self::$reads++;
        $part = substr(self::$buffer, $this->position, min($count, self::$step));
        $this->position += strlen($part);
        return $part;
    }

    public function stream_write(string $data): int
    {
        self::$writes++;
        $part = substr($data, 0, self::$step);
        self::$buffer .= $part;
        return strlen($part);
    }

    public function stream_eof(): bool
    {
        return $this->position >= strlen(self::$buffer);
    }

    public function stream_flush(): bool
    {
        return true;
    }

    /** @return mixed[] */
    public function stream_stat(): array
    {
        return [];
    }

    public function stream_set_option(int $option, int $arg1, ?int $arg2): bool
    {
        return false;
    }
}

<?php

declare(strict_types=1);

namespace Aggregator;

/**
 * One write of a job's output (an echo, a print, the text of exit()) and
 * the place it came from; the last one locates an exit() (Failure::exit).
 *
 * @internal
 */
final readonly class OutputWrite
{
    public function __construct(
        public string $text,
        public string $file,
        public int $line,
    ) {
    }

    /** Whether the line it came from calls exit() or die() with an argument (which is what printed it). */
    public function callsExit(): bool
    {
        if ($this->file === '' || $this->line < 1 || !is_file($this->file)) {
            return false;
        }
        $lines = @file($this->file);
        $source = is_array($lines) ? (string)($lines[$this->line - 1] ?? '') : '';
        return preg_match('/\b(?:exit|die)\s*\(/i', $source) === 1;
    }
}

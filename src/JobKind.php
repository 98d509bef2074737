<?php

declare(strict_types=1);

namespace Aggregator;

/**
 * Which handler a job runs: option 2 of a job frame (docs/PROTOCOL.md).
 */
enum JobKind: int
{
    case Suppliers = 1;
    case Items = 2;

    /**
     * The kind a job frame names.
     *
     * @throws \UnexpectedValueException for a missing or unknown kind
     */
    public static function fromOption(?int $option): self
    {
        return self::tryFrom($option ?? 0) ?? throw new \UnexpectedValueException(sprintf(
            'unknown job kind %s: option 2 must be 1 (suppliers) or 2 (items)',
            $option === null ? '(missing)' : (string)$option,
        ));
    }
}

<?php

declare(strict_types=1);

namespace Aggregator\Porting;

/**
 * The shop's markup by price band, as the legacy handlers computed it
 * ($markups[(int)$price], the last band above them): PHP 8 warns of the
 * undefined key the legacy code relied on, so the fallback is explicit.
 */
final class Markup
{
    /** @param list<float> $markups the markup of each whole price, the last for any price above */
    public static function apply(float $price, array $markups): float
    {
        $markup = $markups[(int)$price] ?? ($markups === [] ? 0.0 : $markups[count($markups) - 1]);
        return round($price * (1 + $markup), 2);
    }
}

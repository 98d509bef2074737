<?php

declare(strict_types=1);

namespace Aggregator;

/** The handlers file is missing, broken, or does not return the expected array. */
final class HandlersException extends \RuntimeException
{
}

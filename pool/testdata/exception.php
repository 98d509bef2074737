<?php

/** Test handlers: every job throws LogicException('boom') from explode_here(), so the trace names it. */

declare(strict_types=1);

function explode_here(): never
{
    throw new LogicException('boom');
}

$handler = static fn (array $input): array => explode_here();

return ['suppliers' => $handler, 'items' => $handler];

<?php

/** Test handlers: answers a string of {"bytes": N} letters "x" (not JSON; it tests frame size only). */

declare(strict_types=1);

$handler = static fn (array $input): string => str_repeat('x', (int)($input['bytes'] ?? 0));

return ['suppliers' => $handler, 'items' => $handler];

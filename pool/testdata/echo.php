<?php

/** Test handlers: every job (suppliers or items alike) answers its input, re-encoded. */

declare(strict_types=1);

$echo = static fn (array $input): array => $input;

return ['suppliers' => $echo, 'items' => $echo];

<?php

/** Test handlers: a PHP syntax error, so the worker fails to start. */

declare(strict_types=1);

return [
    'suppliers' => fn (array $input): array => $input
    'items' => fn (array $input): array => $input,
];

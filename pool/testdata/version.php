<?php

/**
 * Test handlers answering {"version": V} where V is this file's VERSION
 * constant: a reload test rewrites the file (good, broken, good again) and
 * tells by the answer which code a worker runs.
 */

declare(strict_types=1);

const VERSION = 1;

$answer = static fn (array $input): array => ['version' => VERSION];

return ['suppliers' => $answer, 'items' => $answer];

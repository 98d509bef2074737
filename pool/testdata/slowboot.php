<?php

/**
 * Test handlers that take SLOWBOOT_MS milliseconds (default 500) to load,
 * so a test can kill the worker while it starts; then an echo.
 */

declare(strict_types=1);

usleep(1000 * (int)(getenv('SLOWBOOT_MS') ?: 500));

$echo = static fn (array $input): array => $input;

return ['suppliers' => $echo, 'items' => $echo];

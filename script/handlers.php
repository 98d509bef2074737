<?php

/**
 * Worker-mode handlers (demo), loaded once by worker.php:
 *
 *   php worker.php script/handlers.php
 *
 * The same demo library as the exec scripts, so both modes answer alike.
 */

declare(strict_types=1);

require_once __DIR__ . '/lib/Demo.php';

use Aggregator\Demo\Demo;

return [
    'suppliers' => Demo::suppliers(...),
    'items' => Demo::items(...),
];

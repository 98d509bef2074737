<?php

/**
 * Worker-mode handlers (demo), loaded once by worker.php:
 *
 *   php worker.php script/handlers.php
 *
 * The same demo library as the exec scripts, so both modes answer alike.
 * Aggregator\Demo\Demo (script/lib/Demo.php) is autoloaded: composer.json's
 * autoload-dev maps Aggregator\Demo\ to script/lib/, and worker.php loads
 * composer's autoloader, or the same rules without composer.
 */

declare(strict_types=1);

use Aggregator\Demo\Demo;

return [
    'suppliers' => Demo::suppliers(...),
    'items' => Demo::items(...),
];

<?php

/**
 * Exec-mode suppliers script of the example translator (see items.php).
 */

declare(strict_types=1);

require __DIR__ . '/../lib/exec.php';

$handlers = require __DIR__ . '/handlers.php';
exit(\Aggregator\Exec\run($handlers['suppliers']));

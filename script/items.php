<?php

/**
 * Exec-mode items script (demo): one supplier element as JSON on stdin, items JSON on stdout.
 *
 *   echo '{"class":"normal-1","code":"normal","brand":"x","analog":"1"}' | php -d display_errors=stderr script/items.php
 */

declare(strict_types=1);

require __DIR__ . '/lib/Demo.php';
require __DIR__ . '/lib/exec.php';

exit(\Aggregator\Exec\run(\Aggregator\Demo\Demo::items(...)));

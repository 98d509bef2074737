<?php

/**
 * Exec-mode items script (demo): one supplier element as JSON on stdin, items JSON on stdout.
 *
 *   echo '{"class":"normal-1","code":"normal","brand":"x","analog":"1"}' | php -d display_errors=stderr script/items.php
 */

declare(strict_types=1);

// The autoloader (composer's when installed). Under the aggregator the
// prepend file has loaded it already; this line is for running by hand.
require_once __DIR__ . '/../src/autoload.php';

exit(\Aggregator\ExecScript::run(\Aggregator\Demo\Demo::items(...)));

<?php

/**
 * Exec-mode suppliers script (demo): JSON request on stdin, suppliers JSON on stdout.
 *
 *   echo '{"code":"normal","brand":"x","apikey":"1","analog":1}' | php -d display_errors=stderr script/suppliers.php
 */

declare(strict_types=1);

// The autoloader (composer's when installed). Under the aggregator the
// prepend file has loaded it already; this line is for running by hand.
require_once __DIR__ . '/../src/autoload.php';

exit(\Aggregator\ExecScript::run(\Aggregator\Demo\Demo::suppliers(...)));

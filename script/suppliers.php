<?php

/**
 * Exec-mode suppliers script (demo): JSON request on stdin, suppliers JSON on stdout.
 *
 *   echo '{"code":"normal","brand":"x","apikey":"1","analog":1}' | php -d display_errors=stderr script/suppliers.php
 */

declare(strict_types=1);

require __DIR__ . '/lib/Demo.php';
require __DIR__ . '/lib/exec.php';

exit(\Aggregator\Exec\run(\Aggregator\Demo\Demo::suppliers(...)));

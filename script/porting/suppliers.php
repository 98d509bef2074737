<?php

/** Exec mode: the porting example's suppliers handler as a one-shot script. */

declare(strict_types=1);

require_once __DIR__ . '/../../src/autoload.php';

$handlers = require __DIR__ . '/handlers.php';
exit(\Aggregator\ExecScript::run($handlers['suppliers']));

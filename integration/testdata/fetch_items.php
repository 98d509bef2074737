<?php

/**
 * Exec-mode script running the items handler of pool/testdata/fetch.php:
 * the same translator code as the worker runs, so the fetch() parity test
 * compares the two modes on one handler. \Aggregator\ExecScript comes from
 * the prepend file, with no require.
 */

declare(strict_types=1);

$handlers = require __DIR__ . '/../../pool/testdata/fetch.php';
exit(\Aggregator\ExecScript::run($handlers['items']));

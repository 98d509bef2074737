<?php

/**
 * Exec mode: loaded before every script with
 *     php -d auto_prepend_file=/abs/path/src/prepend.php ...
 * (the aggregator adds that, see aggregator.script.prepend), so that scripts
 * of the first implementation run unmodified and yet:
 *   - \Aggregator\fetch(), Response, FetchException, PublicError are there
 *     with no require (SPEC §14);
 *   - SIGUSR1 writes the script's backtrace to stderr (Backtrace.php);
 *   - an uncaught exception or fatal error reaches the aggregator as data
 *     through its report pipe (Report.php), one "handler failed" log line.
 *
 * No declare(strict_types=1) here: it would not reach the script anyway.
 */

require_once __DIR__ . '/autoload.php';

\Aggregator\Backtrace::install();
\Aggregator\Report::install();

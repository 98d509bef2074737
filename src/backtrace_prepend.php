<?php

/**
 * Exec mode: loaded before every script with
 *     php -d auto_prepend_file=/abs/path/src/backtrace_prepend.php ...
 * (the aggregator adds that, see aggregator.script.prepend), so scripts of
 * the first implementation run unmodified and still answer SIGUSR1 with their
 * backtrace on stderr (see Backtrace.php, docs/diagnostics.md).
 *
 * No declare(strict_types=1) here: it would not reach the script anyway, and
 * nothing else is defined, so nothing can clash with the script's names.
 */

require_once __DIR__ . '/Backtrace.php';

\Aggregator\Backtrace::install();

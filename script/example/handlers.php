<?php

/**
 * Worker-mode handlers of the example translator:
 *
 *   bin/aggregator -Daggregator.worker.handlers=script/example/handlers.php
 *
 * The supplier's address and key come from the environment here
 * (EXAMPLE_SUPPLIER_URL, default http://127.0.0.1:8090 where
 * `php -S 127.0.0.1:8090 script/example/fake_supplier.php` answers, and
 * EXAMPLE_SUPPLIER_KEY); a shop would read its own configuration.
 *
 * This file runs once per worker: what it builds (the translator, a
 * connection, a cache) lives for all the jobs of that worker. Its classes
 * (Aggregator\Example\, script/example/) are autoloaded, as a translator
 * package's own namespace would be (docs/translator-package.md).
 */

declare(strict_types=1);

use Aggregator\Example\PartsApiTranslator;

$translator = new PartsApiTranslator(
    getenv('EXAMPLE_SUPPLIER_URL') ?: 'http://127.0.0.1:8090',
    getenv('EXAMPLE_SUPPLIER_KEY') ?: 'example-key',
);

return [
    'suppliers' => $translator->suppliers(...),
    'items' => $translator->items(...),
    // Optional: called after every job, to drop per-job state.
    'reset' => $translator->reset(...),
];

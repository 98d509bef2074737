<?php

/**
 * The prepend file's former name (aggregator.script.prepend before fetch()
 * came): kept so that configurations naming it keep working.
 */

require_once __DIR__ . '/prepend.php';

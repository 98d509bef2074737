<?php

declare(strict_types=1);

namespace Aggregator;

/**
 * An error the customer may read (SPEC §15). A handler that throws it ends
 * its task with E_SCRIPT_ERROR, and the browser's ERROR message carries the
 * text as "_message":
 *
 *     throw new \Aggregator\PublicError('API key 999 may not search');
 *
 * Any other exception's message, file and trace go to the log only: they
 * may hold secrets. Subclass it for errors of your own that are fit to show.
 */
class PublicError extends \RuntimeException
{
}

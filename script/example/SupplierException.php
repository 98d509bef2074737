<?php

declare(strict_types=1);

namespace Aggregator\Example;

/**
 * The supplier's API failed: no answer in time, an HTTP error, or an answer
 * that is not what its documentation promises. The message says which
 * supplier, which URL and what went wrong; the aggregator logs it with the
 * file, line and trace, and the browser gets E_SCRIPT_ERROR for this supplier.
 */
final class SupplierException extends \RuntimeException
{
}

<?php

declare(strict_types=1);

namespace Aggregator\Http;

use Psr\Http\Client\NetworkExceptionInterface;
use Psr\Http\Message\RequestInterface;

/**
 * Psr18Client got no answer (refused, DNS, TLS, timeout, a limit): the
 * FetchException that says why is getPrevious().
 */
final class NetworkException extends \RuntimeException implements NetworkExceptionInterface
{
    public function __construct(string $message, private readonly RequestInterface $request, ?\Throwable $previous = null)
    {
        parent::__construct($message, 0, $previous);
    }

    public function getRequest(): RequestInterface
    {
        return $this->request;
    }
}

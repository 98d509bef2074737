<?php

declare(strict_types=1);

namespace Aggregator;

/**
 * \Aggregator\fetch() got no answer: connection refused, DNS, TLS, timeout,
 * a body over aggregator.limit.output-size, a scheme other than http/https.
 * The message names the URL and the cause; $cause is one word for code:
 * refused, dns, tls, timeout, too_large, scheme, redirects, blocked_address,
 * cancelled, network; and from the supplier limits (docs/suppliers.md)
 * rate_limited and circuit_open.
 */
class FetchException extends \RuntimeException
{
    public function __construct(
        public readonly string $url,
        public readonly string $cause,
        string $message,
        ?\Throwable $previous = null,
    ) {
        parent::__construct($message, 0, $previous);
    }

    /**
     * Point the exception at the translator's call of fetch(), not at the
     * kit's code that made it.
     *
     * @internal
     */
    public function at(string $file, int $line): static
    {
        $this->file = $file;
        $this->line = $line;
        return $this;
    }
}

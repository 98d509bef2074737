<?php

declare(strict_types=1);

namespace Aggregator;

use Aggregator\Http\Request;

/**
 * The aggregator's word that a fetch() call got no answer: the payload of
 * a fetch answer frame with the ERROR flag, {"cause": ..., "message": ...}
 * (docs/PROTOCOL.md). The job that made the call gets it as a
 * FetchException.
 *
 * @internal
 */
final readonly class NoAnswer
{
    public function __construct(
        public string $cause,
        public string $message,
    ) {
    }

    /** Read the ERROR payload; one that cannot be read is a network failure. */
    public static function fromPayload(string $payload): self
    {
        $error = json_decode($payload, true);
        if (!is_array($error)) {
            return new self('network', $payload);
        }
        return new self((string)($error['cause'] ?? 'network'), (string)($error['message'] ?? ''));
    }

    /** The exception for the translator's call, made in its job so that its trace shows the call. */
    public function exception(Request $request): FetchException
    {
        $message = $this->message !== '' ? $this->message : "$request->method $request->url: $this->cause";
        return new FetchException($request->url, $this->cause, $message);
    }
}

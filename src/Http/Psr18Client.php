<?php

declare(strict_types=1);

namespace Aggregator\Http;

use Aggregator\Fetch;
use Aggregator\FetchException;
use Psr\Http\Client\ClientInterface;
use Psr\Http\Message\RequestInterface;
use Psr\Http\Message\ResponseFactoryInterface;
use Psr\Http\Message\ResponseInterface;
use Psr\Http\Message\StreamFactoryInterface;

/**
 * A PSR-18 HTTP client whose requests are fetch() calls (SPEC §17): in a
 * worker's job the job waits without holding the worker; elsewhere PHP
 * makes the call, with the same results. Responses are built with any
 * PSR-17 factory:
 *
 *     $factory = new \Nyholm\Psr7\Factory\Psr17Factory();
 *     $client = new \Aggregator\Http\Psr18Client($factory);   // or ($responseFactory, $streamFactory)
 *     $response = $client->sendRequest($factory->createRequest('GET', 'https://api.example/parts?code=3310'));
 *
 * As PSR-18 asks, any answer is a response (4xx, 5xx and 3xx: redirects are
 * not followed, as Guzzle's own sendRequest() does not); no answer throws
 * NetworkException (its previous: the FetchException, with the cause), a
 * request that cannot be sent (another scheme, a method fetch() does not
 * send, a Host other than the URI's) RequestException. $timeout (seconds)
 * bounds each call, within the job's time.
 */
final class Psr18Client implements ClientInterface
{
    private readonly StreamFactoryInterface $streams;

    public function __construct(
        private readonly ResponseFactoryInterface $responses,
        ?StreamFactoryInterface $streams = null,
        private readonly ?float $timeout = null,
    ) {
        if ($streams === null && !$responses instanceof StreamFactoryInterface) {
            throw new \InvalidArgumentException('Psr18Client needs a PSR-17 stream factory: pass one, or a factory that is both (such as Nyholm\'s Psr17Factory)');
        }
        $this->streams = $streams ?? $responses;
    }

    public function sendRequest(RequestInterface $request): ResponseInterface
    {
        $why = PsrRequest::unsupported($request);
        if ($why !== null) {
            throw new RequestException("the aggregator cannot send $why", $request);
        }
        [$url, $options] = PsrRequest::call($request, $this->timeout);
        try {
            $answer = Fetch::one($url, $options);
        } catch (FetchException $e) {
            throw $e->cause === 'scheme' ? new RequestException($e->getMessage(), $request, $e) : new NetworkException($e->getMessage(), $request, $e);
        } catch (\InvalidArgumentException $e) {
            throw new RequestException($e->getMessage(), $request, $e);
        }
        $response = $this->responses->createResponse($answer->status, ResponseHead::reason($answer->status))
            ->withBody($this->streams->createStream($answer->body));
        foreach (ResponseHead::fields($answer) as $name => $values) {
            $response = $response->withHeader($name, $values);
        }
        return $response;
    }
}

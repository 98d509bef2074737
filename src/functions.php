<?php

/**
 * The translator's API for calling suppliers (SPEC §14). Loaded by worker.php,
 * by the exec prepend file, and by composer's autoload ("files").
 */

declare(strict_types=1);

namespace Aggregator;

if (!function_exists('Aggregator\fetch')) {
    /**
     * Call a supplier over HTTP(S):
     *
     *     $r = \Aggregator\fetch('https://api.example/search?code=3310', [
     *         'method'  => 'GET',                 // default GET
     *         'headers' => ['X-Api-Key' => 'k'],  // name => value
     *         'body'    => null,                  // string or null
     *         'timeout' => 2.5,                   // seconds; default: what is left of the job's time
     *     ]);
     *
     * A status >= 400 is an answer, not an exception. In a worker the job
     * waits without holding the PHP process: the worker runs other jobs.
     *
     * @param array{method?: string, headers?: array<string, scalar>, body?: ?string, timeout?: int|float|null} $options
     * @throws FetchException when there is no answer (refused, DNS, TLS, timeout, body too large, bad scheme)
     */
    function fetch(string $url, array $options = []): Response
    {
        return Fetch::one($url, $options);
    }

    /**
     * Several calls at once (a search and a price call, say); the answer
     * keeps the keys:
     *
     *     ['search' => $s, 'price' => $p] = \Aggregator\fetchAll([
     *         'search' => "$api/search?code=3310",
     *         'price'  => ["$api/price", ['method' => 'POST', 'body' => '{"code":"3310"}']],
     *     ]);
     *
     * @param array<array-key, string|array{0: string, 1?: array<string, mixed>}> $requests a URL, or [URL, options]
     * @return array<array-key, Response|FetchException> a Response, or the FetchException of a call that got no answer
     */
    function fetchAll(array $requests): array
    {
        return Fetch::all($requests);
    }
}

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
     *     $r = \Aggregator\fetch('https://api.example/search', [
     *         'method'    => 'GET',                 // GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS
     *         'headers'   => ['X-Api-Key' => 'k'],  // name => value
     *         'query'     => ['code' => '3310'],    // appended to the URL, RFC 3986-encoded
     *         'body'      => null,                  // a string; or 'json' => value, or 'form' => array
     *         'auth'      => ['user', 'password'],  // HTTP Basic
     *         'timeout'   => 2.5,                   // seconds; default: what is left of the job's time
     *         'redirects' => 5,                     // how many to follow (default 20, 0: none)
     *         'redirect_headers' => false,          // true: your headers go to other hosts a redirect leads to
     *         'not_failures' => [404],              // statuses that are no failure for the supplier's breaker
     *     ]);
     *
     * A status >= 400 is an answer, not an exception. In a worker the job
     * waits without holding the PHP process: the worker runs other jobs.
     * docs/translators.md has every option.
     *
     * @param array<string, mixed> $options
     * @throws FetchException            when there is no answer (refused, DNS, TLS, timeout, body too large, bad scheme, redirects, a supplier limit)
     * @throws \InvalidArgumentException when an option is a mistake or cannot be sent (nothing is sent)
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
     * @throws \InvalidArgumentException when the options of a call are a mistake (none is sent)
     */
    function fetchAll(array $requests): array
    {
        return Fetch::all($requests);
    }
}

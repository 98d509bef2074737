<?php

declare(strict_types=1);

namespace Aggregator\Example;

use Aggregator\FetchException;
use Aggregator\PublicError;

/**
 * An example translator for a supplier with a typical JSON HTTP API:
 *
 *   GET {url}/search?article=3310&brand=ctr&analogs=1
 *   X-Api-Key: {key}
 *
 *   200 {"status":"ok",
 *        "parts":[{"article":"3310","brand":"CTR","title":"Ball joint","price":"12.50","stock":"7","delivery_days":2}],
 *        "crosses":[{"article":"3310-A1","brand":"ANALOGCO"}]}
 *   4xx/5xx {"status":"error","message":"..."}
 *
 * The handlers are plain methods; script/example/handlers.php hands them to
 * the worker, script/example/items.php and suppliers.php run them as one-shot
 * exec scripts. script/example/fake_supplier.php is a fake of this API for
 * trying and testing (php -S 127.0.0.1:8090 script/example/fake_supplier.php).
 */
final class PartsApiTranslator
{
    /** The supplier element's class: one class per supplier API. */
    public const CLASS_NAME = 'partsapi';

    /** Seconds to wait for the supplier, unless its params say otherwise. */
    public const DEFAULT_TIMEOUT = 3.0;

    /**
     * URLs requested during the current job, for error messages. Per-job
     * state: in a warm worker this object lives for many jobs, so reset()
     * clears it after each one (without it the list would grow forever).
     *
     * @var string[]
     */
    private array $requests = [];

    public function __construct(
        private readonly string $url,
        private readonly string $key,
        private readonly float $timeout = self::DEFAULT_TIMEOUT,
    ) {
    }

    /**
     * The suppliers handler: which suppliers to ask for this search.
     *
     * Here the shop decides what this customer may query (by `apikey`); this
     * example asks its one supplier for anyone who sent a key. A customer who
     * may not search gets a \Aggregator\PublicError: the browser's ERROR
     * carries its text as "_message". An empty list would look like "nothing
     * found", and any other exception like a crash.
     *
     * @param array<string, mixed> $request the request fields, also under "params"
     * @return array{suppliers: list<array<string, mixed>>}
     * @throws PublicError when the request has no apikey
     */
    public function suppliers(array $request): array
    {
        if (self::field($request, 'apikey') === '') {
            throw new PublicError('Sign in to search: the request has no API key');
        }
        if (self::field($request, 'code') === '') {
            return ['suppliers' => []];
        }
        return ['suppliers' => [
            $this->supplier(
                self::field($request, 'code'),
                self::field($request, 'brand'),
                self::field($request, 'analog'),
                ['supplier' => self::CLASS_NAME, 'title' => 'Parts API (example)'],
            ),
        ]];
    }

    /**
     * The items handler: ask the supplier and map its answer.
     *
     * Returns the items and, when the search asked for analogs, one nested
     * supplier element per cross reference: the aggregator runs this handler
     * again for each (with analog "0", so the search stops there).
     *
     * @param array<string, mixed> $supplier one element of the suppliers answer, unchanged
     * @return array{items: list<array<string, mixed>>, suppliers: list<array<string, mixed>>}
     * @throws SupplierException when the supplier fails
     * @throws \InvalidArgumentException when the element lacks params.url
     */
    public function items(array $supplier): array
    {
        $params = is_array($supplier['params'] ?? null) ? $supplier['params'] : [];
        $url = (string)($params['url'] ?? '');
        if ($url === '') {
            throw new \InvalidArgumentException('the supplier element has no params.url');
        }
        $code = self::field($supplier, 'code');
        $brand = self::field($supplier, 'brand');
        $analog = !in_array(self::field($supplier, 'analog'), ['', '0', 'false'], true);
        $query = http_build_query(['article' => $code, 'brand' => $brand, 'analogs' => $analog ? 1 : 0]);
        $answer = $this->get(
            rtrim($url, '/') . '/search?' . $query,
            (string)($params['key'] ?? ''),
            (float)($params['timeout'] ?? $this->timeout),
        );

        $items = [];
        foreach ((array)($answer['parts'] ?? []) as $i => $part) {
            if (!is_array($part) || !isset($part['article'], $part['price'])) {
                // stderr goes to the aggregator's log, tagged with the session and task.
                error_log(sprintf('partsapi: skipped part %d without article or price: %s', $i, json_encode($part)));
                continue;
            }
            $items[] = [
                'code' => (string)$part['article'],
                'brand' => (string)($part['brand'] ?? $brand),
                'name' => (string)($part['title'] ?? ''),
                'price' => round((float)$part['price'], 2),
                'quantity' => (int)($part['stock'] ?? 0),
                'delivery' => (int)($part['delivery_days'] ?? 0),
                'supplier' => (string)($supplier['class'] ?? self::CLASS_NAME),
            ];
        }

        $nested = [];
        if ($analog) {
            $info = is_array($supplier['info'] ?? null) ? $supplier['info'] : [];
            foreach ((array)($answer['crosses'] ?? []) as $cross) {
                if (!is_array($cross) || !isset($cross['article'])) {
                    continue;
                }
                $nested[] = $this->supplier(
                    (string)$cross['article'],
                    (string)($cross['brand'] ?? ''),
                    '0',
                    $info + ['analogOf' => "$code $brand"],
                    $params,
                );
            }
        }
        return ['items' => $items, 'suppliers' => $nested];
    }

    /** The reset handler: the worker calls it after every job. */
    public function reset(): void
    {
        $this->requests = [];
    }

    /** @return string[] the URLs requested since the last reset() */
    public function requests(): array
    {
        return $this->requests;
    }

    /**
     * GET a JSON answer through \Aggregator\fetch(): in a worker the job
     * waits without holding the PHP process (the aggregator makes the call),
     * in exec mode PHP makes it; the same answers and exceptions either way.
     *
     * @return array<string, mixed>
     * @throws SupplierException on a timeout, a refused connection, HTTP >= 400, or a body that is not the API's JSON
     */
    private function get(string $url, string $key, float $timeout): array
    {
        $this->requests[] = $url;
        try {
            $response = \Aggregator\fetch($url, [
                'headers' => ['Accept' => 'application/json', 'X-Api-Key' => $key, 'User-Agent' => 'aggregator-example/1.0'],
                'timeout' => $timeout,
            ]);
        } catch (FetchException $e) {
            // The message names the URL and the cause (refused, timeout, ...).
            throw new SupplierException('partsapi: ' . $e->getMessage(), 0, $e);
        }
        $data = json_decode($response->body, true);
        if ($response->status >= 400) {
            $message = is_array($data) && isset($data['message']) ? (string)$data['message'] : substr(trim($response->body), 0, 200);
            throw new SupplierException("partsapi: HTTP $response->status from $url: $message");
        }
        if (!is_array($data)) {
            throw new SupplierException(sprintf('partsapi: %s answered something that is not JSON: %s', $url, substr(trim($response->body), 0, 200)));
        }
        if (($data['status'] ?? 'ok') !== 'ok') {
            throw new SupplierException(sprintf('partsapi: %s answered an error: %s', $url, (string)($data['message'] ?? json_encode($data))));
        }
        return $data;
    }

    /**
     * A supplier element: the input of one items call.
     *
     * @param array<string, mixed> $info   echoed to the browser as _info with every message of the task
     * @param array<string, mixed> $params what items() needs to call the supplier
     * @return array<string, mixed>
     */
    private function supplier(string $code, string $brand, string $analog, array $info, array $params = []): array
    {
        return [
            'class' => self::CLASS_NAME,
            'params' => $params + ['url' => $this->url, 'key' => $this->key, 'timeout' => $this->timeout],
            'code' => $code,
            'brand' => $brand,
            'analog' => $analog,
            'info' => $info,
        ];
    }

    /**
     * A scalar field as a string, from the top level or else from `params`
     * (where the first implementation of the service put the request).
     *
     * @param array<string, mixed> $data
     */
    private static function field(array $data, string $name): string
    {
        $value = $data[$name] ?? (is_array($data['params'] ?? null) ? ($data['params'][$name] ?? null) : null);
        if (is_bool($value)) {
            return $value ? '1' : '0';
        }
        return is_scalar($value) ? (string)$value : '';
    }
}

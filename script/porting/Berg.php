<?php

declare(strict_types=1);

namespace Aggregator\Porting;

/**
 * AFTER: before/berg.php ported (docs/porting.md). The file_get_contents()
 * call is as it was: in a worker the aggregator's http:// wrapper makes it
 * a call the job waits in without holding the worker. What changed:
 *   - the key and URL are local to the job, not in $GLOBALS: jobs of one
 *     worker interleave at that call, and another job would overwrite them;
 *   - a timeout in the stream context (PHP's default is 60 s, longer than
 *     the job may take);
 *   - a failure throws with PHP's warning as the reason, instead of die().
 */
final class Berg
{
    /** @param array{params: array{url: string, key: string, markups?: list<float>}, code: string} $supplier */
    public static function items(array $supplier): array
    {
        $params = $supplier['params'];
        $url = $params['url'] . '/ordering/get_stock.json?items[0][resource_article]=' . urlencode($supplier['code'])
            . '&analogs=1&key=' . urlencode($params['key']);
        $json = @file_get_contents($url, false, stream_context_create(['http' => ['timeout' => 3, 'ignore_errors' => true]]));
        if ($json === false) {
            throw new \RuntimeException('berg: ' . (error_get_last()['message'] ?? 'no answer'));
        }
        $data = json_decode($json, true, 512, JSON_THROW_ON_ERROR);
        if (isset($data['errors'])) {
            throw new \RuntimeException('berg: ' . ($data['errors'][0]['text'] ?? 'error'));
        }
        $items = [];
        foreach ($data['resources'] ?? [] as $resource) {
            foreach ($resource['offers'] ?? [] as $offer) {
                $items[] = ['code' => $resource['article'], 'brand' => $resource['brand']['name'], 'name' => $resource['name'],
                    'price' => Markup::apply((float)$offer['price'], $params['markups'] ?? []), 'quantity' => (int)$offer['quantity']];
            }
        }
        return ['items' => $items];
    }
}

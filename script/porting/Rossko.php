<?php

declare(strict_types=1);

namespace Aggregator\Porting;

/**
 * AFTER: before/rossko.php ported (docs/porting.md). What changed:
 *   - `new \SoapClient(` is `new \Aggregator\SoapClient(`: in a worker the
 *     call (and the WSDL) go through the aggregator, the job waits in it
 *     without holding the worker; in exec mode it is PHP's SoapClient;
 *   - the WSDL is kept in the worker's memory (WSDL_CACHE_MEMORY): parsed
 *     once per worker, not once per search;
 *   - the handler gets the supplier element and returns items: no $_POST,
 *     no exit(), no singleton set up per request, no dynamic property;
 *   - a failure throws (the browser gets ERROR for this supplier) instead
 *     of returning no parts, which the customer reads as "none in stock".
 */
final class Rossko
{
    /** @param array{params: array{wsdl: string, key1: string, key2: string, markups?: list<float>}, code: string} $supplier */
    public static function items(array $supplier): array
    {
        $params = $supplier['params'];
        $client = new \Aggregator\SoapClient($params['wsdl'], ['connection_timeout' => 1, 'trace' => true, 'cache_wsdl' => WSDL_CACHE_MEMORY]);
        $answer = $client->GetSearch(['KEY1' => $params['key1'], 'KEY2' => $params['key2'], 'text' => $supplier['code']]);
        $answer = json_decode((string)json_encode($answer), true);
        if (($answer['SearchResult']['success'] ?? false) !== true) {
            throw new \RuntimeException('rossko: ' . ($answer['SearchResult']['message'] ?? 'no answer'));
        }
        $parts = $answer['SearchResult']['PartsList']['Part'] ?? [];
        if (isset($parts['guid'])) { // one part comes as an object, not a list
            $parts = [$parts];
        }
        $items = [];
        foreach ($parts as $part) {
            foreach ($part['stocks']['stock'] ?? [] as $stock) {
                $items[] = ['code' => $part['partnumber'], 'brand' => $part['brand'], 'name' => $part['name'],
                    'price' => Markup::apply((float)$stock['price'], $params['markups'] ?? []), 'quantity' => (int)$stock['count']];
            }
        }
        return ['items' => $items];
    }
}

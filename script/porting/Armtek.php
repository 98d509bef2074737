<?php

declare(strict_types=1);

namespace Aggregator\Porting;

/**
 * AFTER: before/armtek.php ported (docs/porting.md). curl blocks the worker
 * for the whole call, so the five curl_* lines became one fetch() (the
 * same request: POST form, HTTP Basic); the rest is as it was, with PHP 8
 * in mind: a body that is not JSON no longer gives count(null) (a
 * TypeError in PHP 8), and a failure throws instead of returning no parts.
 */
final class Armtek
{
    /** @param array{params: array{url: string, login: string, password: string, markups?: list<float>}, code: string} $supplier */
    public static function items(array $supplier): array
    {
        $params = $supplier['params'];
        $response = \Aggregator\fetch($params['url'] . '/ws_search/search', [
            'method' => 'POST',
            'headers' => ['Authorization' => 'Basic ' . base64_encode($params['login'] . ':' . $params['password']),
                'Content-Type' => 'application/x-www-form-urlencoded'],
            'body' => http_build_query(['format' => 'json', 'PIN' => $supplier['code'], 'QUERY_TYPE' => 2]),
            'timeout' => 3,
        ]);
        $result = $response->json();
        if (($result['STATUS'] ?? 0) !== 200) {
            throw new \RuntimeException('armtek: ' . ($result['MESSAGES'][0]['TEXT'] ?? "status {$response->status}"));
        }
        $items = [];
        foreach ($result['RESP'] ?? [] as $row) {
            $items[] = ['code' => $row['PIN'], 'brand' => $row['BRAND'], 'name' => $row['NAME'],
                'price' => Markup::apply((float)$row['PRICE'], $params['markups'] ?? []), 'quantity' => (int)$row['RVALUE']];
        }
        return ['items' => $items];
    }
}

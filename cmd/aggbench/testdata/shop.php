<?php

/**
 * The shop bench's translators (aggbench part shop, `make bench ONLY=shop`):
 * 25 suppliers per search, each a parts API that aggbench fakes; the items
 * translator calls its supplier, decodes the answer and maps each part
 * (trimmed names, the shop's markup, only parts in stock), the way a shop's
 * PHP developer writes it. One file, several ways to make the call, so a
 * bench row compares transports and nothing else:
 *
 *   SHOP_SUPPLIERS  name=url,name=url,... (aggbench serves them)
 *   SHOP_CALL       fetch   \Aggregator\fetch()
 *                   stream  file_get_contents() with a stream context
 *                   guzzle  Guzzle 7 on \Aggregator\Http\GuzzleHandler
 *                   soap    \Aggregator\SoapClient (non-WSDL, POST /soap)
 *
 * A supplier answering 503 ends its task with a PublicError saying so: the
 * bench counts those apart from every other task error.
 */

declare(strict_types=1);

namespace AggBench\Shop;

use Aggregator\PublicError;

const MARKUP = 1.18;        // the shop's margin on the supplier's price
const API_KEY = 'bench-key';
const TIMEOUT = 4.0;        // seconds; the job has 5 (aggregator.timeout.script)

/**
 * The suppliers of a search: every configured one.
 *
 * @param array<string, string> $suppliers name => base URL
 */
function suppliers(array $request, array $suppliers): array
{
    $out = [];
    foreach ($suppliers as $name => $url) {
        $out[] = [
            'class' => $name,
            'code' => (string)$request['code'],
            'brand' => (string)$request['brand'],
            'params' => ['url' => $url, 'key' => API_KEY, 'markup' => MARKUP],
            'info' => ['supplier' => $name],
        ];
    }
    return ['suppliers' => $out];
}

/**
 * One supplier's items: its parts, mapped.
 *
 * @param callable(array): array $call the transport: the supplier element to its parts
 */
function items(array $supplier, callable $call): array
{
    return ['items' => mapParts($call($supplier), $supplier)];
}

/** The parts the shop shows: in stock, names trimmed, its price. */
function mapParts(array $parts, array $supplier): array
{
    $markup = (float)($supplier['params']['markup'] ?? 1.0);
    $items = [];
    foreach ($parts as $part) {
        $stock = (int)$part['stock'];
        if ($stock <= 0 || $stock < (int)$part['min_order']) {
            continue;
        }
        $items[] = [
            'code' => trim((string)$part['number']),
            'brand' => trim((string)$part['maker']),
            'name' => trim((string)$part['title']),
            'price' => round((float)$part['price'] * $markup, 2),
            'currency' => (string)$part['currency'],
            'quantity' => $stock,
            'multiplicity' => (int)$part['multiplicity'],
            'delivery' => (int)$part['delivery_days'],
            'warehouse' => (string)$part['warehouse'],
            'supplier' => (string)$supplier['class'],
        ];
    }
    return $items;
}

function searchUrl(array $supplier): string
{
    return $supplier['params']['url'] . '/search?code=' . rawurlencode((string)$supplier['code'])
        . '&brand=' . rawurlencode((string)$supplier['brand']);
}

function unavailable(): PublicError
{
    return new PublicError('the supplier is unavailable (503), try again later');
}

/** @return array<int, array<string, mixed>> the supplier's parts */
function decode(string $body): array
{
    $answer = json_decode($body, true, 512, JSON_THROW_ON_ERROR);
    return $answer['parts'] ?? [];
}

function viaFetch(array $supplier): array
{
    $r = \Aggregator\fetch(searchUrl($supplier), [
        'headers' => ['X-Api-Key' => $supplier['params']['key'], 'Accept' => 'application/json'],
        'timeout' => TIMEOUT,
    ]);
    if ($r->status === 503) {
        throw unavailable();
    }
    if ($r->status !== 200) {
        throw new \RuntimeException("{$supplier['class']} answered {$r->status}");
    }
    return decode($r->body);
}

function viaStream(array $supplier): array
{
    $context = stream_context_create(['http' => [
        'method' => 'GET',
        'header' => "X-Api-Key: {$supplier['params']['key']}\r\nAccept: application/json\r\n",
        'timeout' => TIMEOUT,
    ]]);
    $body = @file_get_contents(searchUrl($supplier), false, $context);
    if ($body === false) {
        $why = error_get_last()['message'] ?? 'no answer';
        if (str_contains($why, ' 503 ')) {
            throw unavailable();
        }
        throw new \RuntimeException("{$supplier['class']}: $why");
    }
    return decode($body);
}

function viaGuzzle(array $supplier): array
{
    require_once '/usr/share/php/GuzzleHttp/autoload.php'; // Debian's php-guzzlehttp-guzzle
    $client = new \GuzzleHttp\Client([
        'handler' => \GuzzleHttp\HandlerStack::create(new \Aggregator\Http\GuzzleHandler()),
        'timeout' => TIMEOUT,
    ]);
    try {
        $response = $client->get(searchUrl($supplier), [
            'headers' => ['X-Api-Key' => $supplier['params']['key'], 'Accept' => 'application/json'],
        ]);
    } catch (\GuzzleHttp\Exception\ServerException $e) {
        if ($e->getResponse()->getStatusCode() === 503) {
            throw unavailable();
        }
        throw $e;
    }
    return decode((string)$response->getBody());
}

function viaSoap(array $supplier): array
{
    $client = new \Aggregator\SoapClient(null, [
        'location' => $supplier['params']['url'] . '/soap',
        'uri' => 'urn:parts',
        'connection_timeout' => (int)TIMEOUT,
        'stream_context' => stream_context_create(['http' => ['header' => "X-Api-Key: {$supplier['params']['key']}"]]),
    ]);
    try {
        $answer = $client->search(new \SoapParam((string)$supplier['code'], 'code'), new \SoapParam((string)$supplier['brand'], 'brand'));
    } catch (\SoapFault $e) {
        if (str_contains($e->getMessage(), 'Unavailable') || str_contains($e->getMessage(), '503')) {
            throw unavailable();
        }
        throw $e;
    }
    // ext-soap without a WSDL: <return> with no <part> is "", one <part> an
    // object, several an array of objects; the fields are strings.
    $parts = is_object($answer) ? $answer->part ?? [] : [];
    $parts = is_array($parts) ? $parts : [$parts];
    return array_map(static fn (object $p): array => (array)$p, $parts);
}

/** @return array<string, string> name => base URL, from SHOP_SUPPLIERS */
function configured(): array
{
    $suppliers = [];
    foreach (explode(',', (string)getenv('SHOP_SUPPLIERS')) as $pair) {
        if (str_contains($pair, '=')) {
            [$name, $url] = explode('=', $pair, 2);
            $suppliers[$name] = $url;
        }
    }
    return $suppliers;
}

$configured = configured();
$call = match ($mode = getenv('SHOP_CALL') ?: 'fetch') {
    'fetch' => viaFetch(...),
    'stream' => viaStream(...),
    'guzzle' => viaGuzzle(...),
    'soap' => viaSoap(...),
    default => throw new \InvalidArgumentException("SHOP_CALL=$mode: want fetch, stream, guzzle or soap"),
};

return [
    'suppliers' => static fn (array $request): array => suppliers($request, $configured),
    'items' => static fn (array $supplier): array => items($supplier, $call),
];

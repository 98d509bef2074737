<?php

/**
 * A fake supplier API for the example translator, to try it and test it
 * without the network:
 *
 *   php -S 127.0.0.1:8090 script/example/fake_supplier.php
 *
 *   GET /search?article=A&brand=B&analogs=1   200: two parts of A, and two crosses when analogs=1
 *                                             (article "empty": no parts; article "blocked": a 200 error answer)
 *   GET /slow/N/search?...                    the same after N seconds (default 3: /slow/search)
 *   GET /fail/search?...                      500 with a JSON error
 *   GET /notjson/search?...                   200 with an HTML page
 *   without an X-Api-Key header               401
 */

declare(strict_types=1);

$path = (string)parse_url($_SERVER['REQUEST_URI'] ?? '/', PHP_URL_PATH);

/** @param array<string, mixed> $body */
function answer(int $status, array $body): void
{
    http_response_code($status);
    header('Content-Type: application/json');
    echo json_encode($body, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);
}

if (preg_match('#^/slow(?:/(\d+))?(/.*)$#', $path, $m) === 1) {
    sleep($m[1] !== '' ? (int)$m[1] : 3);
    $path = $m[2];
} elseif (str_starts_with($path, '/fail/')) {
    answer(500, ['status' => 'error', 'message' => 'internal error, try again later']);
    return;
} elseif (str_starts_with($path, '/notjson/')) {
    header('Content-Type: text/html');
    echo "<html><body><h1>502 Bad Gateway</h1></body></html>\n";
    return;
}

if ($path !== '/search') {
    answer(404, ['status' => 'error', 'message' => "no such endpoint: $path"]);
    return;
}
if (($_SERVER['HTTP_X_API_KEY'] ?? '') === '') {
    answer(401, ['status' => 'error', 'message' => 'missing X-Api-Key']);
    return;
}
$article = (string)($_GET['article'] ?? '');
$brand = strtoupper((string)($_GET['brand'] ?? ''));
if ($article === '') {
    answer(400, ['status' => 'error', 'message' => 'article is required']);
    return;
}
if ($article === 'blocked') {
    answer(200, ['status' => 'error', 'message' => 'this article is blocked for your account']);
    return;
}

$parts = $article === 'empty' ? [] : [
    ['article' => $article, 'brand' => $brand ?: 'OEM', 'title' => "Ball joint $article", 'price' => '12.50', 'stock' => '7', 'delivery_days' => 1],
    ['article' => $article, 'brand' => $brand ?: 'OEM', 'title' => "Ball joint $article (used)", 'price' => '8.9', 'stock' => '2', 'delivery_days' => 3],
];
$crosses = [];
if (($_GET['analogs'] ?? '0') === '1' && $article !== 'empty') {
    $crosses = [
        ['article' => "$article-A1", 'brand' => 'ANALOGCO'],
        ['article' => "$article-A2", 'brand' => 'OTHERCO'],
    ];
}
answer(200, ['status' => 'ok', 'parts' => $parts, 'crosses' => $crosses]);

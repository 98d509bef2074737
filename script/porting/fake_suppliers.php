<?php

/**
 * Fakes of three parts suppliers' APIs, shaped as their public integration
 * code uses them, for the porting example (docs/porting.md):
 *
 *   php -S 127.0.0.1:8091 script/porting/fake_suppliers.php
 *
 *   /rossko?wsdl, /rossko                    SOAP: GetSearch(KEY1, KEY2, text) -> SearchResult {success, message, PartsList}
 *   /berg/ordering/get_stock.json            REST: ?items[0][resource_article]=A&key=K -> {"resources": [...]}
 *   /armtek/ws_search/search                 REST: POST form PIN=A&format=json, HTTP Basic -> {"STATUS": 200, "RESP": [...]}
 *
 * Article "3310" has parts everywhere; "none" has none; key, login or
 * password "bad" are refused as each API refuses them.
 */

declare(strict_types=1);

require_once __DIR__ . '/RosskoService.php';

$path = (string)parse_url((string)$_SERVER['REQUEST_URI'], PHP_URL_PATH);
header('Content-Type: application/json; charset=utf-8');
switch ($path) {
    case '/rossko':
        RosskoService::serve();
        break;
    case '/berg/ordering/get_stock.json':
        $article = (string)($_GET['items'][0]['resource_article'] ?? '');
        if (($_GET['key'] ?? '') === 'bad') {
            http_response_code(403);
            echo json_encode(['errors' => [['code' => 'ERR_AUTH', 'text' => 'invalid key']]]);
            break;
        }
        $resources = $article === 'none' ? [] : [[
            'id' => 1, 'article' => $article, 'brand' => ['id' => 7, 'name' => 'CTR'], 'name' => 'Ball joint',
            'offers' => [['warehouse' => ['name' => 'MSK'], 'price' => 812.4, 'quantity' => 6, 'average_period' => 2]],
        ]];
        echo json_encode(['resources' => $resources], JSON_UNESCAPED_UNICODE);
        break;
    case '/armtek/ws_search/search':
        if (($_SERVER['PHP_AUTH_USER'] ?? '') === '' || ($_SERVER['PHP_AUTH_PW'] ?? '') === 'bad') {
            echo json_encode(['STATUS' => 401, 'MESSAGES' => [['TYPE' => 'E', 'TEXT' => 'Unauthorized']], 'RESP' => []]);
            break;
        }
        $article = (string)($_POST['PIN'] ?? '');
        $resp = $article === 'none' ? [] : [
            ['PIN' => $article, 'BRAND' => 'CTR', 'NAME' => 'Ball joint', 'PRICE' => '799.00', 'RVALUE' => '12', 'DLVDT' => date('YmdHis', time() + 3 * 86400)],
        ];
        echo json_encode(['STATUS' => 200, 'MESSAGES' => [], 'RESP' => $resp], JSON_UNESCAPED_UNICODE);
        break;
    default:
        http_response_code(404);
        echo json_encode(['error' => "no such path: $path"]);
}

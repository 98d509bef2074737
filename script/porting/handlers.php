<?php

/**
 * Worker-mode handlers of the porting example (docs/porting.md): three
 * suppliers whose legacy handlers (before/) called them with SoapClient,
 * file_get_contents and curl, ported with the least change (Rossko.php,
 * Berg.php, Armtek.php):
 *
 *   php -S 127.0.0.1:8091 script/porting/fake_suppliers.php &
 *   PORTING_SUPPLIERS_URL=http://127.0.0.1:8091 bin/aggregator -Daggregator.worker.handlers=script/porting/handlers.php
 *
 * The suppliers' addresses and keys come from the environment here; a shop
 * reads its own configuration (its storage_options).
 */

declare(strict_types=1);

use Aggregator\Porting\Armtek;
use Aggregator\Porting\Berg;
use Aggregator\Porting\Rossko;

$url = getenv('PORTING_SUPPLIERS_URL') ?: 'http://127.0.0.1:8091';

return [
    'suppliers' => static function (array $request) use ($url): array {
        $markups = [0.2];
        $suppliers = [
            ['class' => 'rossko', 'params' => ['wsdl' => "$url/rossko?wsdl", 'key1' => 'k1', 'key2' => 'k2', 'markups' => $markups]],
            ['class' => 'berg', 'params' => ['url' => "$url/berg", 'key' => 'berg-key', 'markups' => $markups]],
            ['class' => 'armtek', 'params' => ['url' => "$url/armtek", 'login' => 'shop', 'password' => 'secret', 'markups' => $markups]],
        ];
        return ['suppliers' => array_map(static fn (array $s): array => $s + ['code' => (string)$request['code'], 'info' => ['supplier' => $s['class']]], $suppliers)];
    },
    'items' => static fn (array $supplier): array => match ($supplier['class']) {
        'rossko' => Rossko::items($supplier),
        'berg' => Berg::items($supplier),
        'armtek' => Armtek::items($supplier),
        default => throw new \InvalidArgumentException("no translator for class {$supplier['class']}"),
    },
];

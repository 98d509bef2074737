<?php

/**
 * A suppliers script in the style of the first implementation, kept to show
 * that such scripts run unmodified: one JSON line on stdin, the request under
 * "params", one JSON line on stdout. It uses nothing from this project.
 */

declare(strict_types=1);

$input = json_decode(fgets(STDIN), true);
$params = $input['params'];

$suppliers = [];
foreach ([1, 2] as $n) {
    $suppliers[] = [
        'class' => "legacy-$n",
        'params' => ['login' => 'legacy', 'password' => 'legacy'],
        'code' => $params['code'],
        'brand' => $params['brand'] ?? '',
        'analog' => (string)($params['analog'] ?? ''),
        'info' => ['supplier' => "legacy-$n"],
    ];
}

echo json_encode(['suppliers' => $suppliers]), "\n";

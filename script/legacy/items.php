<?php

/**
 * An items script in the style of the first implementation: one supplier
 * element as a JSON line on stdin, two items for any supplier as one JSON line
 * on stdout. It uses nothing from this project.
 */

declare(strict_types=1);

$input = json_decode(fgets(STDIN), true);
$params = $input['params'];

$items = [];
foreach ([1, 2] as $n) {
    $items[] = [
        'code' => $input['code'] . "-$n",
        'brand' => $input['brand'] ?? 'legacy',
        'name' => "Legacy part $n from " . $input['class'] . ' (login ' . ($params['login'] ?? '?') . ')',
        'price' => 100 * $n,
        'quantity' => $n,
    ];
}

echo json_encode(['items' => $items]), "\n";

<?php
// BEFORE: a shop's Berg handler on file_get_contents (see docs/porting.md).
// Not run by the aggregator; script/porting/Berg.php is the same code ported.
error_reporting(E_ALL & ~E_NOTICE & ~E_WARNING);

$article = $_REQUEST['article'];
$options = json_decode($_REQUEST['storage_options'], true);
$GLOBALS['supplier_key'] = $options['key'];

function berg_url($article)
{
    return $GLOBALS['options']['url'] . '/ordering/get_stock.json?items[0][resource_article]=' . urlencode($article)
        . '&analogs=1&key=' . $GLOBALS['supplier_key'];
}

$json = file_get_contents(berg_url($article));     // no timeout: PHP's default of 60 s
if ($json === false) {
    die(json_encode(array('result' => 0, 'error' => 'no answer')));
}
$data = json_decode($json, true);
$products = array();
foreach ($data['resources'] as $resource) {
    foreach ($resource['offers'] as $offer) {
        $products[] = array('brand' => $resource['brand']['name'], 'article' => $resource['article'],
            'name' => $resource['name'], 'price' => $offer['price'], 'exist' => $offer['quantity']);
    }
}
echo json_encode(array('result' => 1, 'Products' => $products));

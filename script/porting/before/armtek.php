<?php
// BEFORE: a shop's Armtek handler on curl (see docs/porting.md).
// Not run by the aggregator; script/porting/Armtek.php is the same code ported.
error_reporting(E_ALL & ~E_NOTICE & ~E_WARNING);

class armtek_enclosure
{
    public $Products = array();

    public function __construct($article, $storage_options)
    {
        $ch = curl_init();
        curl_setopt($ch, CURLOPT_URL, $storage_options["url"] . "/ws_search/search");
        curl_setopt($ch, CURLOPT_RETURNTRANSFER, 1);
        curl_setopt($ch, CURLOPT_POST, true);
        curl_setopt($ch, CURLOPT_HTTPHEADER, array("Authorization: Basic " . base64_encode($storage_options["login"] . ":" . $storage_options["password"])));
        curl_setopt($ch, CURLOPT_POSTFIELDS, "format=json&PIN=" . $article . "&QUERY_TYPE=2");
        $curl_result = curl_exec($ch);
        curl_close($ch);

        $curl_result = json_decode($curl_result, true);
        if ($curl_result["STATUS"] != 200) {
            return;
        }
        for ($p = 0; $p < count($curl_result["RESP"]); $p++) {
            $row = $curl_result["RESP"][$p];
            $this->Products[] = array("brand" => $row["BRAND"], "article" => $row["PIN"], "name" => $row["NAME"],
                "price" => (float)$row["PRICE"], "exist" => (int)$row["RVALUE"]);
        }
    }
}

$storage_options = json_decode($_POST["storage_options"], true);
$ob = new armtek_enclosure($_POST["article"], $storage_options);
exit(json_encode($ob));

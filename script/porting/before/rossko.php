<?php
// BEFORE: a shop's Rossko handler as shops write them (see docs/porting.md).
// Run per search by the shop's PHP-FPM: POST article + storage_options, JSON out.
// Not run by the aggregator; script/porting/Rossko.php is the same code ported.
error_reporting(E_ALL & ~E_NOTICE & ~E_WARNING);
require_once($_SERVER["DOCUMENT_ROOT"] . "/shop/Logger.php");

class rossko_enclosure
{
    public $Products = array();

    public function __construct($article, $storage_options)
    {
        $log = Logger::getInstance();               // a singleton, set up per request below
        $this->result = 0;                          // a dynamic property
        try {
            $client = new SoapClient($storage_options["wsdl"], array('connection_timeout' => 1, 'trace' => true));
            $answer = $client->GetSearch(array('KEY1' => $storage_options["key1"], 'KEY2' => $storage_options["key2"], 'text' => $article));
        } catch (SoapFault $e) {
            $log->error("GetSearch: " . $e->getMessage());
            return;
        }
        $answer = json_decode(json_encode($answer), true);
        if ($answer["SearchResult"]["success"] != true) {
            return;
        }
        $Part = $answer["SearchResult"]["PartsList"]["Part"];
        if (isset($Part["guid"])) {                 // one part comes as an object, not a list
            $Part = array($Part);
        }
        for ($i = 0; $i < count($Part); $i++) {
            foreach ($Part[$i]["stocks"]["stock"] as $stock) {
                $markup = $storage_options["markups"][(int)$stock["price"]];
                $this->Products[] = array("brand" => $Part[$i]["brand"], "article" => $Part[$i]["partnumber"],
                    "name" => $Part[$i]["name"], "price" => $stock["price"] * (1 + $markup), "exist" => $stock["count"]);
            }
        }
        $this->result = 1;
    }
}

$storage_options = json_decode($_POST["storage_options"], true);
Logger::getInstance()->init(array("storage_id" => $storage_options["storage_id"]));
$ob = new rossko_enclosure($_POST["article"], $storage_options);
exit(json_encode($ob));

<?php

/**
 * The fake Rossko-like SOAP service of fake_suppliers.php (PHP's
 * SoapServer): GetSearch(KEY1, KEY2, text) answers SearchResult with
 * success, message and PartsList.Part[] (brand, partnumber, name,
 * stocks.stock[] with price, count, delivery), as such APIs answer.
 */

declare(strict_types=1);

final class RosskoService
{
    public static function serve(): void
    {
        $wsdl = self::wsdl('http://' . $_SERVER['HTTP_HOST'] . '/rossko');
        if (isset($_GET['wsdl'])) {
            header('Content-Type: text/xml; charset=utf-8');
            echo $wsdl;
            return;
        }
        header('Content-Type: text/xml; charset=utf-8');
        $file = (string)tempnam(sys_get_temp_dir(), 'wsdl');
        file_put_contents($file, $wsdl);
        try {
            $server = new SoapServer($file, ['cache_wsdl' => WSDL_CACHE_NONE]);
            $server->setObject(new self());
            $server->handle();
        } finally {
            unlink($file);
        }
    }

    public function GetSearch(stdClass $request): array
    {
        if ($request->KEY1 === 'bad') {
            return ['SearchResult' => ['success' => false, 'message' => 'Ключ не найден']];
        }
        $parts = $request->text === 'none' ? [] : [[
            'guid' => 'g-1', 'brand' => 'CTR', 'partnumber' => $request->text, 'name' => 'Шаровая опора',
            'stocks' => ['stock' => [['price' => 805.0, 'count' => 4, 'delivery' => 1], ['price' => 760.0, 'count' => 20, 'delivery' => 5]]],
        ]];
        return ['SearchResult' => ['success' => true, 'message' => '', 'PartsList' => ['Part' => $parts]]];
    }

    private static function wsdl(string $location): string
    {
        return <<<XML
            <?xml version="1.0" encoding="utf-8"?>
            <definitions xmlns="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
                xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:tns="urn:rossko" targetNamespace="urn:rossko" name="Rossko">
            <types><xsd:schema targetNamespace="urn:rossko" elementFormDefault="qualified">
                <xsd:element name="GetSearch"><xsd:complexType><xsd:sequence>
                    <xsd:element name="KEY1" type="xsd:string"/><xsd:element name="KEY2" type="xsd:string"/><xsd:element name="text" type="xsd:string"/>
                </xsd:sequence></xsd:complexType></xsd:element>
                <xsd:element name="GetSearchResponse"><xsd:complexType><xsd:sequence>
                    <xsd:element name="SearchResult"><xsd:complexType><xsd:sequence>
                        <xsd:element name="success" type="xsd:boolean"/><xsd:element name="message" type="xsd:string"/>
                        <xsd:element name="PartsList" minOccurs="0"><xsd:complexType><xsd:sequence>
                            <xsd:element name="Part" minOccurs="0" maxOccurs="unbounded"><xsd:complexType><xsd:sequence>
                                <xsd:element name="guid" type="xsd:string"/><xsd:element name="brand" type="xsd:string"/>
                                <xsd:element name="partnumber" type="xsd:string"/><xsd:element name="name" type="xsd:string"/>
                                <xsd:element name="stocks"><xsd:complexType><xsd:sequence>
                                    <xsd:element name="stock" maxOccurs="unbounded"><xsd:complexType><xsd:sequence>
                                        <xsd:element name="price" type="xsd:double"/><xsd:element name="count" type="xsd:int"/>
                                        <xsd:element name="delivery" type="xsd:int"/>
                                    </xsd:sequence></xsd:complexType></xsd:element>
                                </xsd:sequence></xsd:complexType></xsd:element>
                            </xsd:sequence></xsd:complexType></xsd:element>
                        </xsd:sequence></xsd:complexType></xsd:element>
                    </xsd:sequence></xsd:complexType></xsd:element>
                </xsd:sequence></xsd:complexType></xsd:element>
            </xsd:schema></types>
            <message name="GetSearchIn"><part name="parameters" element="tns:GetSearch"/></message>
            <message name="GetSearchOut"><part name="parameters" element="tns:GetSearchResponse"/></message>
            <portType name="RosskoPort"><operation name="GetSearch"><input message="tns:GetSearchIn"/><output message="tns:GetSearchOut"/></operation></portType>
            <binding name="RosskoBinding" type="tns:RosskoPort"><soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
                <operation name="GetSearch"><soap:operation soapAction="urn:rossko#GetSearch"/>
                    <input><soap:body use="literal"/></input><output><soap:body use="literal"/></output></operation>
            </binding>
            <service name="Rossko"><port name="RosskoPort" binding="tns:RosskoBinding"><soap:address location="$location"/></port></service>
            </definitions>
            XML;
    }
}

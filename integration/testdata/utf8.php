<?php

/**
 * Test handlers that put invalid UTF-8 on every path to the browser: the
 * request's code "public" makes the suppliers handler throw a PublicError
 * whose text is not UTF-8 (it becomes _message); any other code answers
 * raw JSON text whose supplier info (_info) and item are not UTF-8.
 */

declare(strict_types=1);

$suppliers = static function (array $request): string {
    if (($request['code'] ?? '') === 'public') {
        throw new \Aggregator\PublicError("key \xff\xfe may not search");
    }
    return "{\"suppliers\":[{\"class\":\"x\",\"info\":{\"s\":\"info \xff\"}}]}";
};

$items = static fn (array $supplier): string => "{\"items\":[{\"name\":\"item \xc3\x28\"}]}";

return ['suppliers' => $suppliers, 'items' => $items];

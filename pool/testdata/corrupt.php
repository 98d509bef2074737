<?php

/**
 * Test handlers: with {"corrupt": true} the job writes a frame header with a
 * wrong CRC straight to fd 4 (the result pipe) before answering, so the Go
 * side reads a corrupt frame; otherwise an echo.
 */

declare(strict_types=1);

$handler = static function (array $input): array {
    if (!empty($input['corrupt'])) {
        $out = fopen('php://fd/4', 'wb');
        // version 1, hl 3, flags CODEC_RAW, length 4, CRC 0xdeadbeef (wrong), stream flags 0
        fwrite($out, pack('CCVVv', 0x13, 0x04, 4, 0xdeadbeef, 0) . 'oops');
        fflush($out);
    }
    return $input;
};

return ['suppliers' => $handler, 'items' => $handler];

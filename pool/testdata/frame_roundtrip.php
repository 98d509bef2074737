<?php

/**
 * Frame-level echo for the Go cross-language frame test: reads goridge v3
 * frames from fd 3 and writes each back to fd 4 with the same flags, options
 * and payload. No handlers, no handshake.
 *
 * Exit codes: 0 at end of input; 2 on a frame with a bad CRC ("CRC error: ..."
 * on stderr); 1 on any other frame error.
 */

declare(strict_types=1);

foreach (['FrameException', 'CrcMismatchException', 'Frame', 'FrameReader', 'FrameWriter'] as $class) {
    require_once __DIR__ . "/../../src/$class.php";
}

use Aggregator\CrcMismatchException;
use Aggregator\FrameException;
use Aggregator\FrameReader;
use Aggregator\FrameWriter;

$in = fopen('php://fd/3', 'rb');
$out = fopen('php://fd/4', 'wb');
if ($in === false || $out === false) {
    fwrite(STDERR, "frame_roundtrip: fd 3 and fd 4 must be open\n");
    exit(1);
}

$reader = new FrameReader($in);
$writer = new FrameWriter($out);
try {
    while (($frame = $reader->read()) !== null) {
        $writer->write($frame);
    }
} catch (CrcMismatchException $e) {
    fwrite(STDERR, 'CRC error: ' . $e->getMessage() . "\n");
    exit(2);
} catch (FrameException $e) {
    fwrite(STDERR, 'frame error: ' . $e->getMessage() . "\n");
    exit(1);
}
exit(0);

<?php

/**
 * A broken worker for tests: it shakes hands like worker.php, takes one job,
 * then closes its result pipe (fd 4) and keeps running. The supervisor must
 * fail that job at once (not at its timeout) and replace the process.
 */

declare(strict_types=1);

require __DIR__ . '/../../src/Frame.php';
require __DIR__ . '/../../src/FrameException.php';
require __DIR__ . '/../../src/CrcMismatchException.php';
require __DIR__ . '/../../src/FrameReader.php';
require __DIR__ . '/../../src/FrameWriter.php';

use Aggregator\Frame;
use Aggregator\FrameReader;
use Aggregator\FrameWriter;

$in = fopen('php://fd/3', 'rb');
$out = fopen('php://fd/4', 'wb');
(new FrameWriter($out))->write(new Frame(Frame::CONTROL | Frame::CODEC_JSON, json_encode(['pid' => getmypid(), 'protocol' => 2])));
(new FrameReader($in))->read();
fclose($out);
// php://fd dup()s the descriptor, so close the original fd 4 itself (FFI is
// on in Debian's php-cli; the fixture needs it).
\FFI::cdef('int close(int fd);')->close(4);
fwrite(STDERR, "closed fd 4, still running\n");
sleep(300);

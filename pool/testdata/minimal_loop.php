<?php

/**
 * The floor for worker.php (pool/bench_test.go, BenchmarkMinimalLoop): the
 * least a PHP loop must do to answer jobs of protocol 2 with the handlers
 * file given as argv[1]: read a frame (checking its CRC), decode the JSON
 * input, call the handler, encode its answer, write the result frame in one
 * write. No fibers, no fetch(), no output capture, no error handling.
 *
 *   php minimal_loop.php handlers.php   (fd 3 jobs in, fd 4 results out)
 */

declare(strict_types=1);

$handlers = require $argv[1];
$in = fopen('php://fd/3', 'rb');
$out = fopen('php://fd/4', 'wb');

$frame = static function (int $flags, string $payload, array $options): string {
    $head = pack('CCV', (1 << 4) | (3 + count($options)), $flags, strlen($payload));
    return $head . pack('V', crc32($head)) . "\0\0" . pack('V*', ...$options) . $payload;
};
$read = static function (int $n) use ($in): string {
    $data = '';
    while (strlen($data) < $n) {
        $part = fread($in, $n - strlen($data));
        if ($part === '' || $part === false) {
            exit(0);
        }
        $data .= $part;
    }
    return $data;
};

fwrite($out, $frame(0x01 | 0x08, json_encode(['pid' => getmypid(), 'protocol' => 2]), []));
while (true) {
    $header = $read(12);
    $h = unpack('Cfirst/Cflags/Vlength/Vcrc', $header);
    if ($h['crc'] !== crc32(substr($header, 0, 6))) {
        exit(1);
    }
    $options = unpack('V*', $read((($h['first'] & 0x0F) - 3) * 4));
    $payload = $h['length'] > 0 ? $read($h['length']) : '';
    if (($h['flags'] & 0x01) !== 0) {
        exit(0); // a control frame: stop
    }
    $handler = $options[3] === 1 ? $handlers['suppliers'] : $handlers['items'];
    $answer = json_encode($handler(json_decode($payload, true)), JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE);
    fwrite($out, $frame(0x04, $answer, [1, $options[2], 0, 0]));
}

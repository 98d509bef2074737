<?php

/**
 * RoadRunner's worker protocol, answered as cheaply as PHP can
 * (bench_test.go): the same work as pool/testdata/minimal_loop.php (read a
 * frame, decode the JSON input, call the handler of argv[1], encode its
 * answer, write the frame in one write) on stdin/stdout. RoadRunner's own PHP
 * library (spiral/roadrunner-worker) does more per job; it is not used, so
 * the peer measured is RoadRunner's Go pool with the lightest PHP side.
 *
 *   php worker.php handlers.php
 */

declare(strict_types=1);

$handlers = require $argv[1];
$in = STDIN;
$out = STDOUT;

$frame = static function (int $flags, string $payload, array $options): string {
    $head = pack('CCV', (1 << 4) | (3 + count($options)), $flags, strlen($payload));
    return $head . pack('V', crc32($head)) . "\0\0" . ($options === [] ? '' : pack('V*', ...$options)) . $payload;
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

while (true) {
    $header = $read(12);
    $h = unpack('Cfirst/Cflags/Vlength/Vcrc', $header);
    if ($h['crc'] !== crc32(substr($header, 0, 6))) {
        exit(1);
    }
    $words = ($h['first'] & 0x0F) - 3;
    $options = $words > 0 ? unpack('V*', $read($words * 4)) : [];
    $payload = $h['length'] > 0 ? $read($h['length']) : '';
    if (($h['flags'] & 0x01) !== 0) { // CONTROL: the pid handshake, or stop
        $message = json_decode($payload, true);
        if (!empty($message['stop'])) {
            exit(0);
        }
        fwrite($out, $frame(0x01 | 0x08, json_encode(['pid' => getmypid()]), []));
        continue;
    }
    // Options: [context length]; the payload is the context, then the body.
    $body = substr($payload, $options[1] ?? 0);
    $answer = json_encode($handlers['suppliers'](json_decode($body, true)), JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE);
    fwrite($out, $frame(0x04, $answer, [0]));
}

<?php

declare(strict_types=1);

use Aggregator\CrcMismatchException;
use Aggregator\Frame;
use Aggregator\FrameException;
use Aggregator\FrameReader;
use Aggregator\FrameWriter;
use Aggregator\Tests\Assert;
use Aggregator\Tests\TrickleStream;
use Aggregator\Tests\WorkerProcess;

/** Write frames to php://memory and read them back. */
function frame_roundtrip_memory(Frame ...$frames): array
{
    $stream = fopen('php://memory', 'w+b');
    $writer = new FrameWriter($stream);
    foreach ($frames as $frame) {
        $writer->write($frame);
    }
    rewind($stream);
    $reader = new FrameReader($stream);
    $read = [];
    while (($frame = $reader->read()) !== null) {
        $read[] = $frame;
    }
    return $read;
}

function assert_same_frame(Frame $expected, Frame $actual): void
{
    Assert::same($expected->flags, $actual->flags, 'flags');
    Assert::same($expected->options, $actual->options, 'options');
    Assert::same(strlen($expected->payload), strlen($actual->payload), 'payload length');
    Assert::true($expected->payload === $actual->payload, 'payload bytes differ');
}

/** A frame's bytes with one byte replaced. */
function corrupt(string $bytes, int $offset, int $xor = 0x01): string
{
    $bytes[$offset] = chr(ord($bytes[$offset]) ^ $xor);
    return $bytes;
}

return [
    'header layout matches PROTOCOL.md' => function (): void {
        $bytes = (new Frame(Frame::CODEC_RAW, 'hello', [2, 0xFFFFFFFF]))->encode();
        Assert::same(12 + 8 + 5, strlen($bytes), 'frame size');
        Assert::same(0x15, ord($bytes[0]), 'version 1, hl 5');
        Assert::same(Frame::CODEC_RAW, ord($bytes[1]), 'flags');
        Assert::same(5, unpack('V', substr($bytes, 2, 4))[1], 'payload length LE');
        Assert::same(crc32(substr($bytes, 0, 6)), unpack('V', substr($bytes, 6, 4))[1], 'CRC32 of bytes 0-5');
        Assert::same("\0\0", substr($bytes, 10, 2), 'stream flags');
        Assert::same([2, 0xFFFFFFFF], array_values(unpack('V2', substr($bytes, 12, 8))), 'options LE');
        Assert::same('hello', substr($bytes, 20), 'payload');
    },
    'known bytes of a handshake frame' => function (): void {
        // 0x13 = version 1, hl 3; flags 0x09; length 12 LE; CRC32 0x73460c5f LE (computed with Python's zlib.crc32); stream flags 0.
        $expected = '13090c0000005f0c46730000' . bin2hex('{"pid":1234}');
        Assert::same($expected, bin2hex((new Frame(Frame::CONTROL | Frame::CODEC_JSON, '{"pid":1234}'))->encode()));
        Assert::same(0xCBF43926, crc32('123456789'), 'crc32() is CRC-32/IEEE (its check value)');
    },
    'round trip: empty payload, no options' => function (): void {
        $frame = new Frame(Frame::CONTROL | Frame::CODEC_JSON);
        [$read] = frame_roundtrip_memory($frame);
        assert_same_frame($frame, $read);
    },
    'round trip: options, 70 KB payload, UTF-8, several frames in a row' => function (): void {
        $frames = [
            new Frame(Frame::CODEC_RAW, '{"code":"3310"}', [1]),
            new Frame(Frame::CODEC_RAW, str_repeat('0123456789', 7_000), [2]),
            new Frame(Frame::CODEC_JSON | Frame::ERROR, '{"error":"Привет, 世界 🚗"}', [123456789]),
            new Frame(Frame::CODEC_RAW, '', range(1, Frame::MAX_OPTIONS)),
        ];
        $read = frame_roundtrip_memory(...$frames);
        Assert::same(count($frames), count($read), 'frame count');
        foreach ($frames as $i => $frame) {
            assert_same_frame($frame, $read[$i]);
        }
        Assert::same('{"error":"Привет, 世界 🚗"}', $read[2]->payload);
    },
    'decode() of a whole frame, and its size check' => function (): void {
        $frame = new Frame(Frame::CODEC_RAW, 'Привет, 世界', [7]);
        assert_same_frame($frame, Frame::decode($frame->encode()));
        Assert::throws(FrameException::class, fn () => Frame::decode($frame->encode() . 'x'));
    },
    'a wrong CRC is detected' => function (): void {
        $bytes = (new Frame(Frame::CODEC_RAW, 'payload', [1]))->encode();
        foreach ([0, 1, 2, 5, 6, 9] as $offset) {
            $e = Assert::throws(CrcMismatchException::class, fn () => Frame::decode(corrupt($bytes, $offset)), "byte $offset");
            Assert::contains('CRC mismatch', $e->getMessage());
        }
        $stream = fopen('php://memory', 'w+b');
        fwrite($stream, corrupt($bytes, 3, 0x80));
        rewind($stream);
        Assert::throws(CrcMismatchException::class, fn () => (new FrameReader($stream))->read(), 'reader');
    },
    'a wrong version or header length is rejected' => function (): void {
        $withHeader = static function (int $first): string {
            $first6 = pack('CCV', $first, 0, 0);
            return $first6 . pack('V', crc32($first6)) . "\0\0";
        };
        Assert::contains('version', Assert::throws(FrameException::class, fn () => Frame::decode($withHeader(0x23)))->getMessage());
        Assert::contains('header length', Assert::throws(FrameException::class, fn () => Frame::decode($withHeader(0x12)))->getMessage());
    },
    'EOF before a frame is a clean end, EOF inside one is an error' => function (): void {
        $empty = fopen('php://memory', 'w+b');
        Assert::same(null, (new FrameReader($empty))->read());
        $bytes = (new Frame(Frame::CODEC_RAW, 'payload', [1]))->encode();
        foreach ([5, 12, 15, 18] as $cut) {
            $stream = fopen('php://memory', 'w+b');
            fwrite($stream, substr($bytes, 0, $cut));
            rewind($stream);
            $e = Assert::throws(FrameException::class, fn () => (new FrameReader($stream))->read(), "cut at $cut");
            Assert::contains('unexpected end of stream', $e->getMessage());
        }
    },
    'invalid frames cannot be built' => function (): void {
        Assert::throws(\InvalidArgumentException::class, fn () => new Frame(256));
        Assert::throws(\InvalidArgumentException::class, fn () => new Frame(0, '', [-1]));
        Assert::throws(\InvalidArgumentException::class, fn () => new Frame(0, '', [0x100000000]));
        Assert::throws(\InvalidArgumentException::class, fn () => new Frame(0, '', range(1, 13)));
    },
    'partial reads and writes (a stream moving 3 bytes per call)' => function (): void {
        $frames = [new Frame(Frame::CODEC_RAW, 'Привет, 世界', [1, 2]), new Frame(Frame::CONTROL, '')];
        TrickleStream::reset();
        $out = fopen('trickle://out', 'wb');
        foreach ($frames as $frame) {
            (new FrameWriter($out))->write($frame);
        }
        Assert::same($frames[0]->encode() . $frames[1]->encode(), TrickleStream::$buffer, 'written bytes');

        TrickleStream::reset(TrickleStream::$buffer);
        $in = fopen('trickle://in', 'rb');
        stream_set_read_buffer($in, 0);
        $reader = new FrameReader($in);
        assert_same_frame($frames[0], $reader->read());
        assert_same_frame($frames[1], $reader->read());
        Assert::same(null, $reader->read());
        Assert::true(TrickleStream::$reads > 10, 'expected many short reads, got ' . TrickleStream::$reads);
    },
    'partial reads from a pipe written slowly by another process' => function (): void {
        $frame = new Frame(Frame::CODEC_RAW, str_repeat('Привет, 世界! ', 5_000), [2, 42]);
        $file = (string)tempnam(sys_get_temp_dir(), 'frame');
        file_put_contents($file, $frame->encode());
        // The child writes the frame in 7-byte, then 10 KB pieces with pauses in between.
        $code = '$b = file_get_contents($argv[1]); $s = fopen("php://stdout", "wb");'
            . 'foreach ([7, 5] as $n) { fwrite($s, substr($b, 0, $n)); $b = substr($b, $n); usleep(50000); }'
            . 'foreach (str_split($b, 10000) as $p) { fwrite($s, $p); usleep(20000); }';
        $process = proc_open([PHP_BINARY, '-r', $code, $file], [1 => ['pipe', 'w']], $pipes);
        try {
            $read = (new FrameReader($pipes[1]))->read();
            assert_same_frame($frame, $read);
        } finally {
            fclose($pipes[1]);
            proc_close($process);
            unlink($file);
        }
    },
    'frame_roundtrip.php echoes frames (incl. 3 MB and UTF-8) unchanged' => function (): void {
        $frames = [
            new Frame(Frame::CONTROL | Frame::CODEC_JSON, '{"pid":1}'),
            new Frame(Frame::CODEC_RAW, str_repeat('abcdefgh', 3 << 17), [1]),
            new Frame(Frame::CODEC_JSON | Frame::ERROR, 'Привет, 世界', [5, 6, 7]),
            new Frame(0),
        ];
        $in = (string)tempnam(sys_get_temp_dir(), 'rtin');
        $out = (string)tempnam(sys_get_temp_dir(), 'rtout');
        file_put_contents($in, implode('', array_map(fn (Frame $f) => $f->encode(), $frames)));
        $process = proc_open(
            [PHP_BINARY, ROOT . '/pool/testdata/frame_roundtrip.php'],
            [3 => ['file', $in, 'r'], 4 => ['file', $out, 'w']],
            $pipes,
        );
        $code = proc_close($process);
        $echoed = file_get_contents($out);
        unlink($in);
        unlink($out);
        Assert::same(0, $code, 'exit code');
        $stream = fopen('php://memory', 'w+b');
        fwrite($stream, $echoed);
        rewind($stream);
        $reader = new FrameReader($stream);
        foreach ($frames as $frame) {
            assert_same_frame($frame, $reader->read());
        }
        Assert::same(null, $reader->read());
    },
    'frame_roundtrip.php exits 2 with "CRC error" on a bad CRC' => function (): void {
        $process = WorkerProcess::start([ROOT . '/pool/testdata/frame_roundtrip.php']);
        $good = new Frame(Frame::CODEC_RAW, 'ok', [1]);
        $process->send($good);
        assert_same_frame($good, $process->receive());
        $bad = corrupt((new Frame(Frame::CODEC_RAW, 'bad', [1]))->encode(), 7);
        $process->sendRaw($bad);
        Assert::same(2, $process->wait(), 'exit code');
        Assert::contains('CRC error: ', $process->stderr());
    },
];

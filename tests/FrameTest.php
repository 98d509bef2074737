<?php

declare(strict_types=1);

namespace Aggregator\Tests;

use Aggregator\CrcMismatchException;
use Aggregator\Frame;
use Aggregator\FrameException;
use Aggregator\FrameReader;
use Aggregator\FrameWriter;
use PHPUnit\Framework\TestCase;

final class FrameTest extends TestCase
{
    use AssertThrows;

    /** @testdox header layout matches PROTOCOL.md */
    public function testHeaderLayoutMatchesProtocol(): void
    {
        $bytes = (new Frame(Frame::CODEC_RAW, 'hello', [2, 0xFFFFFFFF]))->encode();
        self::assertSame(12 + 8 + 5, strlen($bytes), 'frame size');
        self::assertSame(0x15, ord($bytes[0]), 'version 1, hl 5');
        self::assertSame(Frame::CODEC_RAW, ord($bytes[1]), 'flags');
        self::assertSame(5, unpack('V', substr($bytes, 2, 4))[1], 'payload length LE');
        self::assertSame(crc32(substr($bytes, 0, 6)), unpack('V', substr($bytes, 6, 4))[1], 'CRC32 of bytes 0-5');
        self::assertSame("\0\0", substr($bytes, 10, 2), 'stream flags');
        self::assertSame([2, 0xFFFFFFFF], array_values(unpack('V2', substr($bytes, 12, 8))), 'options LE');
        self::assertSame('hello', substr($bytes, 20), 'payload');
    }

    /** @testdox known bytes of a handshake frame */
    public function testKnownBytesOfAHandshakeFrame(): void
    {
        // 0x13 = version 1, hl 3; flags 0x09; length 12 LE; CRC32 0x73460c5f LE (computed with Python's zlib.crc32); stream flags 0.
        $expected = '13090c0000005f0c46730000' . bin2hex('{"pid":1234}');
        self::assertSame($expected, bin2hex((new Frame(Frame::CONTROL | Frame::CODEC_JSON, '{"pid":1234}'))->encode()));
        self::assertSame(0xCBF43926, crc32('123456789'), 'crc32() is CRC-32/IEEE (its check value)');
    }

    /** @testdox round trip: empty payload, no options */
    public function testRoundTripEmptyPayloadNoOptions(): void
    {
        $frame = new Frame(Frame::CONTROL | Frame::CODEC_JSON);
        [$read] = self::roundtripMemory($frame);
        self::assertSameFrame($frame, $read);
    }

    /** @testdox round trip: options, 70 KB payload, UTF-8, several frames in a row */
    public function testRoundTripOptionsBigPayloadUtf8SeveralFrames(): void
    {
        $frames = [
            new Frame(Frame::CODEC_RAW, '{"code":"3310"}', [1]),
            new Frame(Frame::CODEC_RAW, str_repeat('0123456789', 7_000), [2]),
            new Frame(Frame::CODEC_JSON | Frame::ERROR, '{"error":"Привет, 世界 🚗"}', [123456789]),
            new Frame(Frame::CODEC_RAW, '', range(1, Frame::MAX_OPTIONS)),
        ];
        $read = self::roundtripMemory(...$frames);
        self::assertSame(count($frames), count($read), 'frame count');
        foreach ($frames as $i => $frame) {
            self::assertSameFrame($frame, $read[$i]);
        }
        self::assertSame('{"error":"Привет, 世界 🚗"}', $read[2]->payload);
    }

    /** @testdox decode() of a whole frame, and its size check */
    public function testDecodeOfAWholeFrameAndItsSizeCheck(): void
    {
        $frame = new Frame(Frame::CODEC_RAW, 'Привет, 世界', [7]);
        self::assertSameFrame($frame, Frame::decode($frame->encode()));
        self::assertThrows(FrameException::class, fn () => Frame::decode($frame->encode() . 'x'));
    }

    /** @testdox a wrong CRC is detected */
    public function testAWrongCrcIsDetected(): void
    {
        $bytes = (new Frame(Frame::CODEC_RAW, 'payload', [1]))->encode();
        foreach ([0, 1, 2, 5, 6, 9] as $offset) {
            $e = self::assertThrows(CrcMismatchException::class, fn () => Frame::decode(self::corrupt($bytes, $offset)), "byte $offset");
            self::assertStringContainsString('CRC mismatch', $e->getMessage());
        }
        $stream = fopen('php://memory', 'w+b');
        fwrite($stream, self::corrupt($bytes, 3, 0x80));
        rewind($stream);
        self::assertThrows(CrcMismatchException::class, fn () => (new FrameReader($stream))->read(), 'reader');
    }

    /** @testdox a wrong version or header length is rejected */
    public function testAWrongVersionOrHeaderLengthIsRejected(): void
    {
        $withHeader = static function (int $first): string {
            $first6 = pack('CCV', $first, 0, 0);
            return $first6 . pack('V', crc32($first6)) . "\0\0";
        };
        self::assertStringContainsString('version', self::assertThrows(FrameException::class, fn () => Frame::decode($withHeader(0x23)))->getMessage());
        self::assertStringContainsString('header length', self::assertThrows(FrameException::class, fn () => Frame::decode($withHeader(0x12)))->getMessage());
    }

    /** @testdox EOF before a frame is a clean end, EOF inside one is an error */
    public function testEofBeforeAFrameIsACleanEndEofInsideOneIsAnError(): void
    {
        $empty = fopen('php://memory', 'w+b');
        self::assertNull((new FrameReader($empty))->read());
        $bytes = (new Frame(Frame::CODEC_RAW, 'payload', [1]))->encode();
        foreach ([5, 12, 15, 18] as $cut) {
            $stream = fopen('php://memory', 'w+b');
            fwrite($stream, substr($bytes, 0, $cut));
            rewind($stream);
            $e = self::assertThrows(FrameException::class, fn () => (new FrameReader($stream))->read(), "cut at $cut");
            self::assertStringContainsString('unexpected end of stream', $e->getMessage());
        }
    }

    /** @testdox invalid frames cannot be built */
    public function testInvalidFramesCannotBeBuilt(): void
    {
        self::assertThrows(\InvalidArgumentException::class, fn () => new Frame(256));
        self::assertThrows(\InvalidArgumentException::class, fn () => new Frame(0, '', [-1]));
        self::assertThrows(\InvalidArgumentException::class, fn () => new Frame(0, '', [0x100000000]));
        self::assertThrows(\InvalidArgumentException::class, fn () => new Frame(0, '', range(1, 13)));
    }

    /** @testdox partial reads and writes (a stream moving 3 bytes per call) */
    public function testPartialReadsAndWritesThroughATrickleStream(): void
    {
        $frames = [new Frame(Frame::CODEC_RAW, 'Привет, 世界', [1, 2]), new Frame(Frame::CONTROL, '')];
        TrickleStream::reset();
        $out = fopen('trickle://out', 'wb');
        foreach ($frames as $frame) {
            (new FrameWriter($out))->write($frame);
        }
        self::assertSame($frames[0]->encode() . $frames[1]->encode(), TrickleStream::$buffer, 'written bytes');

        TrickleStream::reset(TrickleStream::$buffer);
        $in = fopen('trickle://in', 'rb');
        stream_set_read_buffer($in, 0);
        $reader = new FrameReader($in);
        self::assertSameFrame($frames[0], $reader->read());
        self::assertSameFrame($frames[1], $reader->read());
        self::assertNull($reader->read());
        self::assertTrue(TrickleStream::$reads > 10, 'expected many short reads, got ' . TrickleStream::$reads);
    }

    /** @testdox partial reads from a pipe written slowly by another process */
    public function testPartialReadsFromAPipeWrittenSlowlyByAnotherProcess(): void
    {
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
            self::assertSameFrame($frame, $read);
        } finally {
            fclose($pipes[1]);
            proc_close($process);
            unlink($file);
        }
    }

    /** @testdox frame_roundtrip.php echoes frames (incl. 3 MB and UTF-8) unchanged */
    public function testFrameRoundtripScriptEchoesFramesUnchanged(): void
    {
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
        self::assertSame(0, $code, 'exit code');
        $stream = fopen('php://memory', 'w+b');
        fwrite($stream, $echoed);
        rewind($stream);
        $reader = new FrameReader($stream);
        foreach ($frames as $frame) {
            self::assertSameFrame($frame, $reader->read());
        }
        self::assertNull($reader->read());
    }

    /** @testdox frame_roundtrip.php exits 2 with "CRC error" on a bad CRC */
    public function testFrameRoundtripScriptExits2OnABadCrc(): void
    {
        $process = WorkerProcess::start([ROOT . '/pool/testdata/frame_roundtrip.php']);
        $good = new Frame(Frame::CODEC_RAW, 'ok', [1]);
        $process->send($good);
        self::assertSameFrame($good, $process->receive());
        $bad = self::corrupt((new Frame(Frame::CODEC_RAW, 'bad', [1]))->encode(), 7);
        $process->sendRaw($bad);
        self::assertSame(2, $process->wait(), 'exit code');
        self::assertStringContainsString('CRC error: ', $process->stderr());
    }

    /**
     * Write frames to php://memory and read them back.
     *
     * @return Frame[]
     */
    private static function roundtripMemory(Frame ...$frames): array
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

    private static function assertSameFrame(Frame $expected, Frame $actual): void
    {
        self::assertSame($expected->flags, $actual->flags, 'flags');
        self::assertSame($expected->options, $actual->options, 'options');
        self::assertSame(strlen($expected->payload), strlen($actual->payload), 'payload length');
        // Not assertSame: a failure would print (and diff) payloads of up to 3 MB.
        self::assertTrue($expected->payload === $actual->payload, 'payload bytes differ');
    }

    /** A frame's bytes with one byte replaced. */
    private static function corrupt(string $bytes, int $offset, int $xor = 0x01): string
    {
        $bytes[$offset] = chr(ord($bytes[$offset]) ^ $xor);
        return $bytes;
    }
}

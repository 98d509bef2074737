<?php

declare(strict_types=1);

namespace Aggregator\Tests;

use Aggregator\Failure;
use Aggregator\NoAnswer;
use Aggregator\PublicError;
use PHPUnit\Framework\TestCase;

/** The failures PHP sends the aggregator and the no-answer it gets back, in their wire form (docs/PROTOCOL.md). */
final class FailureTest extends TestCase
{
    /** @testdox a throwable: error, class, file, line, trace (with its causes), and public for a PublicError */
    public function testAThrowable(): void
    {
        $cause = new \LogicException('inner');
        $wire = json_decode(Failure::of(new \RuntimeException('outer', 0, $cause))->json(), true);
        self::assertSame(['error', 'class', 'file', 'line', 'trace'], array_keys($wire));
        self::assertSame(['outer', 'RuntimeException', __FILE__], [$wire['error'], $wire['class'], $wire['file']]);
        self::assertStringContainsString('Caused by LogicException: inner in ' . __FILE__, $wire['trace']);

        $wire = json_decode(Failure::of(new PublicError('API key 999 may not search'))->json(), true);
        self::assertSame(true, $wire['public']);
        self::assertArrayNotHasKey('fatal', $wire);
    }

    /** @testdox a fatal error is fatal, and "memory exhausted" gets a hint naming memory_limit */
    public function testAFatalError(): void
    {
        $error = ['type' => E_ERROR, 'message' => 'Allowed memory size of 16777216 bytes exhausted', 'file' => '/h.php', 'line' => 7];
        $wire = json_decode(Failure::fatalError($error, '16M')->json(), true);
        self::assertSame(['error', 'class', 'file', 'line', 'trace', 'fatal', 'hint'], array_keys($wire));
        self::assertSame(['FatalError', '/h.php', 7, true], [$wire['class'], $wire['file'], $wire['line'], $wire['fatal']]);
        self::assertStringStartsWith('memory_limit is 16M: ', $wire['hint']);
        $other = json_decode(Failure::fatalError(['message' => 'Call to undefined function f()'] + $error, '16M')->json(), true);
        self::assertArrayNotHasKey('hint', $other);
    }

    /** @testdox invalid UTF-8 in a message travels as U+FFFD: the wire form never fails */
    public function testInvalidUtf8NeverFailsTheWireForm(): void
    {
        $wire = json_decode(Failure::of(new \RuntimeException("bad \xff byte"))->json(), true);
        self::assertSame("bad \u{FFFD} byte", $wire['error']);
    }

    /** @testdox no answer: the cause and message Go sent; anything unreadable is a network failure */
    public function testNoAnswer(): void
    {
        $no = NoAnswer::fromPayload('{"cause":"refused","message":"GET http://x/: refused: connection refused"}');
        self::assertSame(['refused', 'GET http://x/: refused: connection refused'], [$no->cause, $no->message]);
        $no = NoAnswer::fromPayload('not json');
        self::assertSame(['network', 'not json'], [$no->cause, $no->message]);
    }
}

<?php

declare(strict_types=1);

namespace Aggregator\Testing;

use PHPUnit\Framework\Assert;

/**
 * Assertions on what the browser would get (an Answer), for any PHPUnit
 * test class; TranslatorTestCase uses them. A failure shows the error code,
 * the reason, the handler's exception with its trace and PHP's stderr.
 */
trait TranslatorAssertions
{
    /** The browser gets the result: no ERROR. */
    public static function assertAnswered(Answer $answer, string $message = ''): void
    {
        Assert::assertSame('', $answer->code, self::answerMessage($message, 'the browser gets an ERROR', $answer));
    }

    /**
     * The browser gets exactly these items, in this order.
     *
     * @param list<array<string, mixed>> $expected
     */
    public static function assertItems(array $expected, Answer $answer, string $message = ''): void
    {
        self::assertAnswered($answer, $message);
        Assert::assertSame($expected, $answer->items, self::answerMessage($message, 'the items differ', $answer));
    }

    /**
     * The browser gets an ERROR with $code and, as "_message", exactly
     * $customerMessage: the text of a \Aggregator\PublicError, or null for
     * none (any other exception's text never reaches the browser).
     */
    public static function assertBrowserError(string $code, ?string $customerMessage, Answer $answer, string $message = ''): void
    {
        Assert::assertSame($code, $answer->code, self::answerMessage($message, "want ERROR $code", $answer));
        Assert::assertSame($customerMessage, $answer->message, self::answerMessage($message, 'the _message differs', $answer));
    }

    private static function answerMessage(string $message, string $what, Answer $answer): string
    {
        return ($message === '' ? '' : "$message: ") . "$what\n" . $answer->describe();
    }
}

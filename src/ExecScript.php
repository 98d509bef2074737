<?php

declare(strict_types=1);

namespace Aggregator;

/**
 * Exec-mode adapter: turns a handler into a one-shot CLI script.
 *
 *     exit(\Aggregator\ExecScript::run(MyTranslator::items(...)));
 *
 * Reads the whole of stdin as JSON, calls the handler with it as an array
 * and prints the answer (an array as JSON, a string as-is) and a newline on
 * stdout; exit code 0. When the handler throws, the exception goes to the
 * aggregator as data (Report.php; run by hand: readable on stderr) and the
 * exit code is 1; a \Aggregator\PublicError's message reaches the customer.
 */
final class ExecScript
{
    /**
     * @param callable(array): (array|string) $handler
     * @return int the exit code
     */
    public static function run(callable $handler): int
    {
        $input = json_decode((string)stream_get_contents(STDIN), true);
        if (!is_array($input)) {
            $why = json_last_error() === JSON_ERROR_NONE ? 'got a JSON ' . get_debug_type($input) : json_last_error_msg();
            Report::send(Failure::of(new \UnexpectedValueException("stdin must hold a JSON object: $why")));
            return 1;
        }
        try {
            $output = self::encode($handler($input));
        } catch (\Throwable $e) {
            Report::send(Failure::of($e));
            return 1;
        }
        fwrite(STDOUT, $output . "\n");
        return 0;
    }

    /**
     * The handler's answer as text.
     *
     * @throws \JsonException when the array cannot be encoded
     * @throws \UnexpectedValueException when the answer is neither an array nor a string
     */
    public static function encode(mixed $answer): string
    {
        if (is_string($answer)) {
            return $answer;
        }
        if (is_array($answer)) {
            return json_encode($answer, Worker::JSON_FLAGS | JSON_THROW_ON_ERROR);
        }
        throw new \UnexpectedValueException('the handler must return an array or a string, it returned ' . get_debug_type($answer));
    }
}

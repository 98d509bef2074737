<?php

declare(strict_types=1);

namespace Aggregator\Exec;

/**
 * Exec-mode adapter: turns a handler into a one-shot CLI script.
 *
 * Reads the whole of stdin as JSON, calls the handler with it as an array and
 * prints the answer (an array as JSON, a string as-is) and a newline on stdout.
 * Exit code 0 on success; on bad input or any exception a message goes to
 * stderr and the exit code is 1.
 *
 * Usage:  exit(\Aggregator\Exec\run(SomeClass::handler(...)));
 *
 * @param callable(array): (array|string) $handler
 * @return int the exit code
 */
function run(callable $handler): int
{
    $input = json_decode((string)stream_get_contents(STDIN), true);
    if (!is_array($input)) {
        fail('stdin must hold a JSON object: ' . (json_last_error() === JSON_ERROR_NONE ? 'got a JSON ' . get_debug_type($input) : json_last_error_msg()));
        return 1;
    }
    try {
        $output = encode($handler($input));
    } catch (\Throwable $e) {
        fail(sprintf("%s: %s in %s:%d\n%s", get_class($e), $e->getMessage(), $e->getFile(), $e->getLine(), $e->getTraceAsString()));
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
function encode(mixed $answer): string
{
    if (is_string($answer)) {
        return $answer;
    }
    if (is_array($answer)) {
        return json_encode($answer, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE | JSON_THROW_ON_ERROR);
    }
    throw new \UnexpectedValueException('the handler must return an array or a string, it returned ' . get_debug_type($answer));
}

/** A message on stderr, which the aggregator logs. */
function fail(string $message): void
{
    fwrite(STDERR, $message . "\n");
}

<?php

declare(strict_types=1);

namespace Aggregator;

use Aggregator\Http\Request;
use Aggregator\Http\StreamTransport;

/**
 * What \Aggregator\fetch() and fetchAll() do (SPEC §14). Inside a job of
 * a worker, a call suspends the job's Fiber: the worker sends the request
 * to the aggregator, which performs it in Go while the worker runs other
 * jobs, and the answer resumes the job. Anywhere else (exec mode, a test,
 * a handlers file while it loads, a Fiber of the translator's own) PHP
 * performs the call itself, with the same results and exceptions.
 */
final class Fetch
{
    /** @var \WeakMap<\Fiber, true>|null the worker's job fibers */
    private static ?\WeakMap $jobFibers = null;

    private static ?StreamTransport $streams = null;

    /**
     * @throws FetchException            when there is no answer
     * @throws \InvalidArgumentException for options that cannot be sent (Http/Options.php)
     */
    public static function one(string $url, array $options = []): Response
    {
        $result = self::all([[$url, $options]])[0];
        if ($result instanceof FetchException) {
            throw $result;
        }
        return $result;
    }

    /**
     * Several calls at once; the answer keeps the keys of $requests.
     *
     * @param array<array-key, string|array{0: string, 1?: array<string, mixed>}> $requests
     *        each a URL, or [URL, options] with the options of fetch()
     * @return array<array-key, Response|FetchException> a response, or the exception of a call that got none
     * @throws \InvalidArgumentException for a call whose options cannot be sent: none of the calls is made
     */
    public static function all(array $requests): array
    {
        try {
            $results = self::calls($requests);
        } catch (\InvalidArgumentException $e) {
            throw self::pointAt($e, ...self::caller());
        }
        [$file, $line] = self::caller();
        foreach ($results as $key => $result) {
            if ($result instanceof FetchException) {
                $results[$key] = $result->at($file, $line);
            }
        }
        return $results;
    }

    /**
     * @param array<array-key, string|array{0: string, 1?: array<string, mixed>}> $requests
     * @return array<array-key, Response|FetchException>
     */
    private static function calls(array $requests): array
    {
        $results = [];
        $pending = [];
        foreach ($requests as $key => $spec) {
            [$url, $options] = is_string($spec) ? [$spec, []] : [$spec[0] ?? null, $spec[1] ?? []];
            if (!is_string($url) || !is_array($options)) {
                throw new \InvalidArgumentException("fetchAll(): request '$key' must be a URL or [URL, options]");
            }
            try {
                $pending[$key] = Request::from($url, $options);
                $results[$key] = null;
            } catch (FetchException $e) {
                $results[$key] = $e;
            }
        }
        if ($pending === []) {
            return $results;
        }
        $fiber = \Fiber::getCurrent();
        if ($fiber !== null && isset(self::$jobFibers[$fiber])) {
            $answers = \Fiber::suspend(new FetchBatch(array_values($pending)));
            foreach (array_keys($pending) as $i => $key) {
                $results[$key] = self::fromWorker($pending[$key], $answers[$i] ?? null);
            }
            return $results;
        }
        self::$streams ??= new StreamTransport();
        foreach ($pending as $key => $request) {
            try {
                $results[$key] = self::$streams->send($request);
            } catch (FetchException $e) {
                $results[$key] = $e;
            }
        }
        return $results;
    }

    /**
     * Where the translator called fetch() or fetchAll(): the first frame
     * outside this kit.
     *
     * @return array{0: string, 1: int}
     */
    private static function caller(): array
    {
        foreach (debug_backtrace(DEBUG_BACKTRACE_IGNORE_ARGS, 6) as $frame) {
            if (isset($frame['file']) && !str_starts_with($frame['file'], __DIR__ . '/')) {
                return [$frame['file'], (int)($frame['line'] ?? 0)];
            }
        }
        return [__FILE__, __LINE__];
    }

    /** The translator's mistake, pointed at its call of fetch() rather than at the kit's check. */
    private static function pointAt(\InvalidArgumentException $e, string $file, int $line): \InvalidArgumentException
    {
        (new \ReflectionProperty(\Exception::class, 'file'))->setValue($e, $file);
        (new \ReflectionProperty(\Exception::class, 'line'))->setValue($e, $line);
        return $e;
    }

    /**
     * Whether the code running now is a worker's job, where fetch()
     * suspends (the http:// wrapper and the adapters ask).
     *
     * @internal
     */
    public static function inJob(): bool
    {
        $fiber = \Fiber::getCurrent();
        return $fiber !== null && isset(self::$jobFibers[$fiber]);
    }

    /**
     * Mark a Fiber of the worker: fetch() inside it suspends it.
     *
     * @internal
     */
    public static function suspendIn(\Fiber $fiber): void
    {
        self::$jobFibers ??= new \WeakMap();
        self::$jobFibers[$fiber] = true;
    }

    /**
     * A worker's answer to one call: a Response, or a FetchException made
     * here, so its trace points at the translator's call.
     */
    private static function fromWorker(Request $request, mixed $answer): Response|FetchException
    {
        if ($answer instanceof Response) {
            return $answer;
        }
        return ($answer instanceof NoAnswer ? $answer : new NoAnswer('network', ''))->exception($request);
    }
}

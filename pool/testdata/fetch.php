<?php

/**
 * Test handlers for \Aggregator\fetch(): the items handler calls what its
 * input says and answers what it got.
 *   {"url": U, "options": {...}}            fetch(U) → {"status","headers","body","url"}
 *   {"all": {"a": U1, "b": [U2, {...}]}}     fetchAll → {"a": {...} or {"cause","message"}, ...}
 *   {"then": U2}                             after the first call, a second one
 *   {"finally": FILE}                        writes "ran" to FILE in a finally block
 *   {"spin": seconds}                        after the call, burns CPU that long (a stuck job)
 * An exception the handler does not catch (FetchException) fails the job.
 * The suppliers handler throws \Aggregator\PublicError with the input's "message".
 */

declare(strict_types=1);

use Aggregator\FetchException;
use Aggregator\PublicError;
use Aggregator\Response;

$describe = static function (Response|FetchException $r): array {
    if ($r instanceof FetchException) {
        return ['cause' => $r->cause, 'message' => $r->getMessage()];
    }
    return ['status' => $r->status, 'headers' => $r->headers, 'body' => $r->body, 'url' => $r->url, 'md5' => md5($r->body)];
};

return [
    'suppliers' => static function (array $input): array {
        throw new PublicError((string)($input['message'] ?? 'not allowed'));
    },
    'items' => static function (array $input) use ($describe): array {
        try {
            if (isset($input['all'])) {
                return array_map($describe, \Aggregator\fetchAll($input['all']));
            }
            $answer = $describe(\Aggregator\fetch((string)$input['url'], $input['options'] ?? []));
            if (isset($input['then'])) {
                $answer['then'] = $describe(\Aggregator\fetch((string)$input['then']));
            }
            if (isset($input['spin'])) {
                $end = microtime(true) + (float)$input['spin'];
                while (microtime(true) < $end) {
                    // a job stuck in PHP code
                }
            }
            return $answer;
        } finally {
            if (isset($input['finally'])) {
                file_put_contents((string)$input['finally'], 'ran');
            }
        }
    },
];

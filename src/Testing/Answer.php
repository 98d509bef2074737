<?php

declare(strict_types=1);

namespace Aggregator\Testing;

/**
 * What the browser would get from one call of a handler, as
 * `aggregator call --json` reports it.
 *
 * On success $code is '' and $items (an items call) or $suppliers (a
 * suppliers call, or an items call's nested suppliers) hold what becomes
 * SENDING messages and new tasks. On failure $code is the ERROR's "_error"
 * (E_SCRIPT_ERROR, E_ITEMS_RESPONSE, ...), $message its "_message" (the text
 * of a \Aggregator\PublicError; null when the browser gets none), $error
 * the reason in the log's words, and $exception the handler's exception.
 */
final class Answer
{
    /**
     * @param list<array<string, mixed>> $items
     * @param list<array<string, mixed>> $suppliers
     * @param array<string, mixed>|null  $info      the supplier's info field, echoed as _info (items calls)
     * @param list<string>               $stderr    what PHP wrote on stderr for this job
     * @param array{class: string, message: string, file: string, line: int, trace: string, public?: bool, hint?: string}|null $exception
     */
    public function __construct(
        public readonly string $kind,
        public readonly string $mode,
        public readonly string $code,
        public readonly string $error,
        public readonly ?string $message,
        public readonly array $items,
        public readonly array $suppliers,
        public readonly ?array $info,
        public readonly string $output,
        public readonly array $stderr,
        public readonly ?array $exception,
        public readonly float $durationMs,
        public readonly string $log = '',
    ) {
    }

    /**
     * @param string $json one `call --json` report
     * @param string $log  what the aggregator logged on stderr meanwhile
     * @throws \UnexpectedValueException when $json is not such a report
     */
    public static function fromReport(string $json, int $exit, string $log = ''): self
    {
        $r = json_decode($json, true);
        if (!is_array($r) || !isset($r['code'], $r['kind'])) {
            throw new \UnexpectedValueException("aggregator call --json (exit $exit) printed no report:\n$json\n$log");
        }
        return new self(
            kind: (string)$r['kind'],
            mode: (string)($r['mode'] ?? ''),
            code: (string)$r['code'],
            error: (string)($r['error'] ?? ''),
            message: isset($r['message']) && $r['message'] !== '' ? (string)$r['message'] : null,
            items: array_values((array)($r['items'] ?? [])),
            suppliers: array_values((array)($r['suppliers'] ?? [])),
            info: is_array($r['info'] ?? null) ? $r['info'] : null,
            output: (string)($r['output'] ?? ''),
            stderr: array_values(array_map('strval', (array)($r['stderr'] ?? []))),
            exception: is_array($r['exception'] ?? null) ? $r['exception'] : null,
            durationMs: (float)($r['duration_ms'] ?? 0),
            log: $log,
        );
    }

    /** Whether the browser gets the result (no ERROR). */
    public function ok(): bool
    {
        return $this->code === '';
    }

    /** The answer in a few lines, for a failing assertion's message. */
    public function describe(): string
    {
        $lines = ["{$this->kind} in {$this->mode} mode: " . ($this->ok() ? 'the browser gets the result' : "ERROR {$this->code}")];
        if ($this->error !== '') {
            $lines[] = "reason: {$this->error}";
        }
        if ($this->message !== null) {
            $lines[] = "_message: {$this->message}";
        }
        if ($this->exception !== null) {
            $e = $this->exception;
            $lines[] = sprintf('exception: %s: %s at %s:%d', $e['class'] ?? '?', $e['message'] ?? '', $e['file'] ?? '?', $e['line'] ?? 0);
            if (($e['trace'] ?? '') !== '') {
                $lines[] = $e['trace'];
            }
        }
        $lines[] = 'output: ' . ($this->output === '' ? '(none)' : substr($this->output, 0, 500));
        foreach ($this->stderr as $line) {
            $lines[] = "stderr: $line";
        }
        return implode("\n", $lines);
    }
}

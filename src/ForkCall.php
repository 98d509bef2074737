<?php

declare(strict_types=1);

namespace Aggregator;

/**
 * One exec call as the fork server receives it (ForkServer.php): what
 * `php [flags] script.php args…` would have been given, and what the
 * child must look like before it includes the script.
 *
 * The request is JSON from the aggregator:
 *     {"id":7,"dir":"/srv/app","env":["PATH=…","A=1"],"script":"script/items.php","argv":["script/items.php","x"]}
 */
final readonly class ForkCall
{
    /**
     * @param int $id the aggregator's number for the call (echoed in the replies)
     * @param string $dir absolute working directory
     * @param list<string> $env the environment, "NAME=value" each, in order
     * @param string $script the script as the command names it (relative to $dir or absolute)
     * @param list<string> $argv $argv as PHP builds it: the script as named, then the arguments
     */
    public function __construct(
        public int $id,
        public string $dir,
        public array $env,
        public string $script,
        public array $argv,
    ) {
    }

    /** @throws \UnexpectedValueException when the request is not one */
    public static function fromJson(string $json): self
    {
        $r = json_decode($json, true);
        if (!is_array($r) || !is_int($r['id'] ?? null) || !is_string($r['dir'] ?? null) || !is_string($r['script'] ?? null)
            || !self::isStringList($r['env'] ?? null) || !self::isStringList($r['argv'] ?? null) || $r['argv'] === []) {
            throw new \UnexpectedValueException('not a fork request: ' . substr($json, 0, 200));
        }
        return new self($r['id'], $r['dir'], $r['env'], $r['script'], $r['argv']);
    }

    /** The script's path to include: as named when absolute, else under the working directory. */
    public function path(): string
    {
        return str_starts_with($this->script, '/') ? $this->script : rtrim($this->dir, '/') . '/' . $this->script;
    }

    /**
     * $_SERVER as the CLI builds it for `php script.php`: the environment,
     * then the script's own entries, in the CLI's order (an environment
     * variable of the same name keeps its place and takes the CLI's
     * value, as there); empty when variables_order has no S.
     *
     * @param array<string, string> $env the environment as getenv() lists it
     * @return array<string, mixed>
     */
    public function server(array $env, string $variablesOrder, float $now): array
    {
        if (stripos($variablesOrder, 'S') === false) {
            return [];
        }
        return array_replace($env, [
            'PHP_SELF' => $this->script,
            'SCRIPT_NAME' => $this->script,
            'SCRIPT_FILENAME' => $this->script,
            'PATH_TRANSLATED' => $this->script,
            'DOCUMENT_ROOT' => '',
            'REQUEST_TIME_FLOAT' => $now,
            'REQUEST_TIME' => (int)$now,
            'argv' => $this->argv,
            'argc' => count($this->argv),
        ]);
    }

    /**
     * Replace the process environment with this call's: every variable
     * unset, then each set in order, so getenv(), the $_ENV PHP builds on
     * first use and the processes the script starts see exactly the call's.
     */
    public function applyEnv(): void
    {
        foreach (array_keys(getenv()) as $name) {
            putenv((string)$name);
        }
        foreach ($this->env as $pair) {
            if (str_contains($pair, '=') && !str_starts_with($pair, '=')) {
                putenv($pair);
            }
        }
    }

    private static function isStringList(mixed $v): bool
    {
        return is_array($v) && array_is_list($v) && array_filter($v, 'is_string') === $v;
    }
}

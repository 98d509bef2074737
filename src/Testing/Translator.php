<?php

declare(strict_types=1);

namespace Aggregator\Testing;

/**
 * A translator as the aggregator runs it, for its tests. Every call runs
 *
 *     aggregator [-Dkey=value ...] call --json suppliers|items JSON
 *
 * so the answer is the aggregator's own: the same worker.php or exec
 * adapter, the same time limit, the same checks of the output, the same
 * error codes and the same "_message" the browser would get.
 *
 *     $translator = Translator::worker(__DIR__ . '/../handlers.php');
 *     $translator = Translator::exec(__DIR__ . '/../suppliers.php', __DIR__ . '/../items.php');
 *     $answer = $translator->suppliers(['code' => '3310', 'brand' => 'ctr', 'apikey' => 'k', 'analog' => 1]);
 *     $answer = $translator->items($answer->suppliers[0]);
 *
 * The aggregator binary: $AGGREGATOR_BIN, else bin/aggregator beside this
 * kit (a checkout after `make build`, or an unpacked release), else
 * `aggregator` on PATH; see binary(). It runs in the working directory
 * (the project root when phpunit runs there) and reads the
 * application.properties found there, as the server would.
 */
final class Translator
{
    /**
     * @param array<string, string> $config -Dkey=value overrides
     * @param array<string, string> $env    variables added to the aggregator's (and so PHP's) environment
     */
    private function __construct(
        private readonly array $config,
        private readonly array $env = [],
        private readonly ?string $workDir = null,
    ) {
    }

    /**
     * Worker mode: $handlersFile returns ['suppliers' => callable, 'items' => callable].
     * The worker is the project's vendor/bin/worker.php when there is one
     * (composer's autoloader, so the project's classes load), else this kit's.
     */
    public static function worker(string $handlersFile): self
    {
        $worker = is_file(getcwd() . '/vendor/bin/worker.php') ? getcwd() . '/vendor/bin/worker.php' : self::kitDir() . '/worker.php';
        return new self([
            'aggregator.pool.mode' => 'worker',
            'aggregator.worker.command' => self::commandLine([PHP_BINARY, '-d', 'display_errors=stderr', '-d', 'memory_limit=64M', $worker]),
            'aggregator.worker.handlers' => self::absolute($handlersFile),
        ]);
    }

    /** Exec mode: one PHP process per call, each script through \Aggregator\ExecScript. */
    public static function exec(string $suppliersScript, string $itemsScript): self
    {
        return new self([
            'aggregator.pool.mode' => 'exec',
            'aggregator.script.suppliers' => self::commandLine([PHP_BINARY, '-d', 'display_errors=stderr', self::absolute($suppliersScript)]),
            'aggregator.script.items' => self::commandLine([PHP_BINARY, '-d', 'display_errors=stderr', self::absolute($itemsScript)]),
            'aggregator.script.prepend' => self::kitDir() . '/src/prepend.php',
        ]);
    }

    /**
     * More configuration keys, e.g. ['aggregator.timeout.script' => '1'];
     * they win over the ones worker() and exec() set.
     *
     * @param array<string, string|int|float> $keys
     */
    public function withConfig(array $keys): self
    {
        return new self(array_map('strval', $keys) + $this->config, $this->env, $this->workDir);
    }

    /**
     * Environment variables for the aggregator and the PHP it starts.
     *
     * @param array<string, string> $env
     */
    public function withEnv(array $env): self
    {
        return new self($this->config, $env + $this->env, $this->workDir);
    }

    /** Run the aggregator in $dir (default: the working directory). */
    public function in(string $dir): self
    {
        return new self($this->config, $this->env, $dir);
    }

    /** "worker" or "exec". */
    public function mode(): string
    {
        return $this->config['aggregator.pool.mode'] ?? 'worker';
    }

    /**
     * The suppliers handler, given the browser's request as the aggregator
     * builds its input: the fields of aggregator.fields.request, at the top
     * and again under "params" (a missing field: E_ILLEGAL_REQUEST).
     *
     * @param array<string, mixed>|string $request an array, or the request's JSON
     */
    public function suppliers(array|string $request): Answer
    {
        return $this->call('suppliers', $request);
    }

    /**
     * The items handler, given one supplier element as it is.
     *
     * @param array<string, mixed>|string $supplier an array, or the element's JSON
     */
    public function items(array|string $supplier): Answer
    {
        return $this->call('items', $supplier);
    }

    /**
     * The aggregator binary the calls run.
     *
     * @throws \RuntimeException naming where it looked and where it comes from
     */
    public static function binary(): string
    {
        $env = getenv('AGGREGATOR_BIN');
        if ($env !== false && $env !== '') {
            if (!is_file($env) || !is_executable($env)) {
                throw new \RuntimeException("AGGREGATOR_BIN=$env: no executable file there. " . self::whereFrom());
            }
            return $env;
        }
        $beside = self::kitDir() . '/bin/aggregator';
        if (is_file($beside) && is_executable($beside)) {
            return $beside;
        }
        foreach (explode(PATH_SEPARATOR, (string)getenv('PATH')) as $dir) {
            if ($dir !== '' && is_file("$dir/aggregator") && is_executable("$dir/aggregator")) {
                return "$dir/aggregator";
            }
        }
        throw new \RuntimeException("the aggregator binary was not found (not in AGGREGATOR_BIN, not at $beside, not on PATH). " . self::whereFrom());
    }

    /**
     * @param array<string, mixed>|string $input
     */
    private function call(string $kind, array|string $input): Answer
    {
        $json = is_string($input) ? $input : self::encode($input);
        $args = [self::binary()];
        foreach ($this->config as $key => $value) {
            $args[] = "-D$key=$value";
        }
        array_push($args, 'call', '--json', $kind, $json);
        $out = (string)tempnam(sys_get_temp_dir(), 'aggcall');
        $err = (string)tempnam(sys_get_temp_dir(), 'aggcall');
        try {
            $process = proc_open($args, [0 => ['file', '/dev/null', 'r'], 1 => ['file', $out, 'w'], 2 => ['file', $err, 'w']],
                $pipes, $this->workDir ?? (string)getcwd(), $this->env + getenv());
            if ($process === false) {
                throw new \RuntimeException('cannot start ' . $args[0]);
            }
            $exit = proc_close($process);
            $stdout = (string)file_get_contents($out);
            $stderr = (string)file_get_contents($err);
        } finally {
            @unlink($out);
            @unlink($err);
        }
        if ($exit !== 0 && $exit !== 1) {
            // 2: bad usage or configuration (an unknown key, a missing handlers file).
            throw new \RuntimeException(sprintf("aggregator call %s exited %d:\n%s", $kind, $exit, trim($stderr)));
        }
        return Answer::fromReport($stdout, $exit, $stderr);
    }

    /** @param array<string, mixed> $input */
    private static function encode(array $input): string
    {
        // An empty PHP array is a JSON object here: the input is always one.
        return $input === [] ? '{}' : json_encode($input, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR);
    }

    /** Where the binary comes from, for the message when it is missing. */
    private static function whereFrom(): string
    {
        return 'The tests run your handlers through the aggregator itself (aggregator call --json). '
            . 'Set AGGREGATOR_BIN=/path/to/bin/aggregator: bin/aggregator of a release tarball '
            . '(`make dist` in the aggregator repository makes dist/aggregator-VERSION.tar.gz), '
            . 'or of a checkout of that repository after `make build`; or put `aggregator` on PATH.';
    }

    /** The kit's directory: this repository, or vendor/aggregator/worker. */
    private static function kitDir(): string
    {
        return dirname(__DIR__, 2);
    }

    private static function absolute(string $path): string
    {
        $real = realpath($path);
        if ($real === false) {
            throw new \InvalidArgumentException("no such file: $path");
        }
        return $real;
    }

    /**
     * Words as one command line for a *.command key: the aggregator splits
     * it into words (quotes group them) and runs it without a shell.
     *
     * @param string[] $words
     */
    private static function commandLine(array $words): string
    {
        return implode(' ', array_map(static function (string $w): string {
            if (preg_match('/[\s"\']/', $w) !== 1) {
                return $w;
            }
            if (!str_contains($w, '"')) {
                return "\"$w\"";
            }
            if (!str_contains($w, "'")) {
                return "'$w'";
            }
            throw new \InvalidArgumentException("a path with both kinds of quotes cannot be passed to the aggregator: $w");
        }, $words));
    }
}

<?php

declare(strict_types=1);

namespace Aggregator;

/**
 * The PHP functions a worker runs, loaded from a handlers file.
 *
 * A handlers file returns an array:
 *   [
 *       'suppliers' => fn(array $request): array|string => ...,
 *       'items'     => fn(array $supplier): array|string => ...,
 *       'reset'     => fn(): void => ...,   // optional, called after every job
 *   ]
 */
final readonly class Handlers
{
    public function __construct(
        public \Closure $suppliers,
        public \Closure $items,
        public ?\Closure $reset = null,
    ) {
    }

    /**
     * Load and check a handlers file.
     *
     * @throws HandlersException with a message fit for an operator
     */
    public static function load(string $path): self
    {
        if ($path === '') {
            throw new HandlersException('no handlers file given: pass its path as the first argument or in AGGREGATOR_HANDLERS');
        }
        if (!is_file($path) || !is_readable($path)) {
            throw new HandlersException("handlers file '$path' does not exist or is not readable");
        }
        try {
            $handlers = self::includeFile($path);
        } catch (\Throwable $e) {
            throw new HandlersException(sprintf(
                "handlers file '%s' failed to load: %s: %s in %s:%d",
                $path,
                get_class($e),
                $e->getMessage(),
                $e->getFile(),
                $e->getLine(),
            ), 0, $e);
        }
        return self::fromArray($handlers, $path);
    }

    /**
     * Build from the value a handlers file returned.
     *
     * @throws HandlersException when a required callable is missing
     */
    public static function fromArray(mixed $handlers, string $path = 'handlers'): self
    {
        if (!is_array($handlers)) {
            throw new HandlersException(sprintf(
                "handlers file '%s' must return an array with callables 'suppliers' and 'items', it returned %s",
                $path,
                get_debug_type($handlers),
            ));
        }
        foreach (['suppliers', 'items'] as $name) {
            if (!isset($handlers[$name]) || !is_callable($handlers[$name])) {
                throw new HandlersException("handlers file '$path' must return an array with a callable '$name'");
            }
        }
        if (isset($handlers['reset']) && !is_callable($handlers['reset'])) {
            throw new HandlersException("handlers file '$path': 'reset' must be callable when given");
        }
        return new self(
            \Closure::fromCallable($handlers['suppliers']),
            \Closure::fromCallable($handlers['items']),
            isset($handlers['reset']) ? \Closure::fromCallable($handlers['reset']) : null,
        );
    }

    /** The handler for a job kind. */
    public function forKind(JobKind $kind): \Closure
    {
        return match ($kind) {
            JobKind::Suppliers => $this->suppliers,
            JobKind::Items => $this->items,
        };
    }

    /** Include the file in a clean scope (no $this, no local variables). */
    private static function includeFile(string $path): mixed
    {
        return (static fn (string $__file) => require $__file)($path);
    }
}

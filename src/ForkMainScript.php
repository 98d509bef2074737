<?php

declare(strict_types=1);

namespace Aggregator;

/**
 * PHP's own record of the main script, set for a fork server's child.
 *
 * For `php script.php` the CLI keeps the script's real path in
 * SG(request_info).path_translated, and getmyuid(), getmygid(),
 * getmyinode(), getlastmod() and get_current_user() describe that file.
 * The fork server's parent runs -r code, for which the CLI records
 * "Standard input code" (so those functions give false and ""); a child
 * records its script there instead. prepare() reads the record through
 * FFI only when it holds that "Standard input code", so a PHP whose
 * sapi_globals are laid out otherwise is left alone (those functions then
 * differ; docs/fork-server.md).
 */
final class ForkMainScript
{
    private const PHP = <<<'C'
        struct sapi_request_head { void *server_context; const char *request_method; char *query_string;
                                   char *cookie_data; long content_length; const char *path_translated; };
        struct sapi_request_head sapi_globals;
        C;

    /** What the CLI records for -r code. */
    private const DIRECT_CODE = 'Standard input code';

    private function __construct(private \FFI $php)
    {
    }

    /** In the parent: the record, or null when it is not where it should be. */
    public static function prepare(): ?self
    {
        try {
            $php = \FFI::cdef(self::PHP);
        } catch (\Throwable) {
            return null;
        }
        // FFI reads a char * member as a PHP string (null for NULL).
        return $php->sapi_globals->path_translated === self::DIRECT_CODE ? new self($php) : null;
    }

    /** In a child: record $realPath as the main script (the string lives as long as the process). */
    public function record(string $realPath): void
    {
        $copy = $this->php->new('char[' . (strlen($realPath) + 1) . ']', false, true);
        \FFI::memcpy($copy, $realPath, strlen($realPath));
        $this->php->sapi_globals->path_translated = $this->php->cast('char *', \FFI::addr($copy));
    }
}

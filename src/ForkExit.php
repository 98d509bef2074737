<?php

declare(strict_types=1);

namespace Aggregator;

/**
 * The fork server's quick exit: a child ends right after PHP's request
 * shutdown, skipping the module shutdown, with the exit status PHP would
 * have given.
 *
 * Why: a fork shares the parent's memory copy-on-write, and PHP's module
 * shutdown frees every extension's tables, which writes to (and so copies)
 * about a thousand pages: measured on this machine kind, 6.7–7.6 ms of CPU
 * per child against 0.7–1.0 ms for the rest of a child's exit, when a
 * whole `php script.php` costs about 16 ms. Nothing of the module shutdown
 * is visible to a script (shutdown functions, destructors, output buffers,
 * extensions' request shutdown and the closing of its streams all come
 * before), but PHP has no switch to skip it.
 *
 * How: the CLI calls sapi_module.deactivate() once per process, after the
 * whole request shutdown; a child points it at 18 bytes of code that load
 * EG(exit_status), the value the CLI returns, and call exit_group(2). The
 * offset of exit_status in executor_globals is measured, not assumed: a
 * probe child exits with a marker and a shutdown function finds it. Then
 * two test children must exit 77 and 0 through it. Anything unexpected
 * (another CPU than x86-64, symbols FFI cannot see, an executable mapping
 * refused) leaves children exiting PHP's own way; prepare() says why.
 */
final class ForkExit
{
    /** The parent's environment variable that turns the quick exit off ("0"). */
    public const OFF = 'AGGREGATOR_FORK_QUICK_EXIT';

    private const PHP = <<<'C'
        struct sapi_head { const char *name; const char *pretty_name; void *startup; void *shutdown;
                           void *activate; void *deactivate; };
        struct sapi_head sapi_module;
        unsigned char executor_globals[2048];
        void *mmap(void *addr, size_t len, int prot, int flags, int fd, long offset);
        int mprotect(void *addr, size_t len, int prot);
        void _exit(int status);
        C;

    /** The marker the probe child exits with. */
    private const MARK = 0x5EC7A11;

    private const PAGE = 4096;
    private const PROT_READ = 1;
    private const PROT_WRITE = 2;
    private const PROT_EXEC = 4;
    private const MAP_PRIVATE_ANONYMOUS = 0x22;
    private const SYS_EXIT_GROUP = 231; // x86-64

    private function __construct(private \FFI $php, private \FFI\CData $code)
    {
    }

    /**
     * In the parent, before it serves: the quick exit, or why children
     * exit PHP's own way. Forks three short-lived children.
     */
    public static function prepare(): self|string
    {
        if (php_uname('m') !== 'x86_64') {
            return 'the quick exit is written for x86-64, this is ' . php_uname('m');
        }
        try {
            $php = \FFI::cdef(self::PHP);
        } catch (\Throwable $e) {
            return "FFI cannot see PHP's own sapi_module and executor_globals: " . $e->getMessage();
        }
        // FFI reads a char * member as a PHP string (null for NULL).
        if ($php->sapi_module->name !== 'cli' || \FFI::isNull($php->sapi_module->deactivate)) {
            return 'sapi_module is not the CLI\'s as expected';
        }
        $offset = self::probe($php);
        if (is_string($offset)) {
            return $offset;
        }
        $code = self::code($php, $offset);
        if (is_string($code)) {
            return $code;
        }
        $quick = new self($php, $code);
        foreach ([77, 0] as $want) {
            $got = $quick->trial($want);
            if ($got !== $want) {
                return "a test child exiting $want through the quick exit ended with status $got";
            }
        }
        return $quick;
    }

    /** In a child: end the process through the quick exit after the request shutdown. */
    public function arm(): void
    {
        $this->php->sapi_module->deactivate = $this->code;
    }

    /**
     * Where EG(exit_status) is: a child exits with MARK and a shutdown
     * function (which runs after exit() set it) looks for the value.
     */
    private static function probe(\FFI $php): int|string
    {
        $pair = stream_socket_pair(STREAM_PF_UNIX, STREAM_SOCK_STREAM, STREAM_IPPROTO_IP);
        if ($pair === false) {
            return 'no socket pair for the probe';
        }
        $pid = pcntl_fork();
        if ($pid === 0) {
            fclose($pair[0]);
            register_shutdown_function(static function () use ($php, $pair): void {
                $ints = \FFI::cast('int32_t *', \FFI::addr($php->executor_globals));
                $hits = [];
                for ($i = 0, $n = intdiv(\FFI::sizeof($php->executor_globals), 4); $i < $n; $i++) {
                    if ($ints[$i] === self::MARK) {
                        $hits[] = $i * 4;
                    }
                }
                fwrite($pair[1], json_encode($hits));
                $php->_exit(0);
            });
            exit(self::MARK);
        }
        fclose($pair[1]);
        if ($pid < 0) {
            fclose($pair[0]);
            return 'the probe could not fork';
        }
        $hits = json_decode((string)stream_get_contents($pair[0]), true);
        fclose($pair[0]);
        pcntl_waitpid($pid, $status);
        if (!is_array($hits) || count($hits) !== 1) {
            return 'the probe found EG(exit_status) at ' . json_encode($hits) . ', not at one place';
        }
        return $hits[0];
    }

    /** The code: movabs rax, &EG(exit_status); mov edi, [rax]; mov eax, SYS_exit_group; syscall. */
    private static function code(\FFI $php, int $offset): \FFI\CData|string
    {
        $address = \FFI::cast('uintptr_t', \FFI::addr($php->executor_globals))->cdata + $offset;
        $bytes = "\x48\xB8" . pack('P', $address) . "\x8B\x38" . "\xB8" . pack('V', self::SYS_EXIT_GROUP) . "\x0F\x05";
        $page = $php->mmap(null, self::PAGE, self::PROT_READ | self::PROT_WRITE, self::MAP_PRIVATE_ANONYMOUS, -1, 0);
        if (\FFI::cast('intptr_t', $page)->cdata === -1) {
            return 'mmap refused a page for the quick exit';
        }
        \FFI::memcpy($page, $bytes, strlen($bytes));
        if ($php->mprotect($page, self::PAGE, self::PROT_READ | self::PROT_EXEC) !== 0) {
            return 'mprotect refused to make the quick exit executable (an execmem policy?)';
        }
        return $page;
    }

    /** A child that exits with $code through the quick exit: its status as the parent sees it. */
    private function trial(int $code): int
    {
        $pid = pcntl_fork();
        if ($pid === 0) {
            $this->arm();
            exit($code);
        }
        if ($pid < 0 || pcntl_waitpid($pid, $status) !== $pid) {
            return -1;
        }
        return pcntl_wifexited($status) ? pcntl_wexitstatus($status) : -1;
    }
}

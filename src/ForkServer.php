<?php

declare(strict_types=1);

namespace Aggregator;

require_once __DIR__ . '/ForkCall.php';
require_once __DIR__ . '/ForkExit.php';
require_once __DIR__ . '/ForkMainScript.php';

/**
 * The fork server: a warm PHP parent that forks one child per exec call,
 * so that `php [flags] script.php` costs a fork instead of PHP's start-up
 * (pool/forkserver starts it; docs/fork-server.md).
 *
 * The aggregator starts it as `php [the command's flags] -r CODE`, CODE
 * being (pool/forkserver/command.go builds it, on one line)
 *
 *     require '/…/src/ForkServer.php'; \Aggregator\ForkServer::serve();
 *     if (\Aggregator\ForkServer::prepend() !== '') require \Aggregator\ForkServer::prepend();
 *     require \Aggregator\ForkServer::script();
 *     if (\Aggregator\ForkServer::append() !== '') require \Aggregator\ForkServer::append();
 *
 * and serve() returns only in a child, which then includes the script at
 * global scope as `php script.php` runs it: `-r` because PHP runs no
 * auto_prepend_file before `-r` code (the parent must load nothing of the
 * scripts) yet ini_get() still holds it for the child.
 *
 * The parent talks to the aggregator over a SOCK_SEQPACKET socket on fd 3,
 * one JSON object per message. A request is a ForkCall with the call's
 * pipes attached (SCM_RIGHTS): its stdin, stdout, stderr, then its fds 3, 4…
 * Replies: {"t":"hello","pid":…,"quick_exit":…} once ready (with "why" when
 * children exit PHP's own way: ForkExit.php), or {"t":"unavailable","why":…}
 * and exit), {"t":"started","id":…,"pid":…} or {"t":"failed","id":…,"error":…}
 * per request, and {"t":"exited","pid":…,"status":…} (the raw wait status)
 * when a child ends. When the aggregator closes its end the parent forks no
 * more, waits for its children, reports them and exits.
 *
 * PHP has no dup2(): closing fd 0 means fclose(STDIN), after which the
 * STDIN constant is a dead resource. So the child uses libc's dup2() and
 * prctl() through FFI (needs ext-ffi with ffi.enable=preload, Debian's
 * default for the CLI, or 1) and fork/waitpid from ext-pcntl. Without them
 * the parent says "unavailable" and the aggregator keeps fork+exec.
 */
final class ForkServer
{
    /** The parent's end of the control socket. */
    public const CONTROL_FD = 3;

    /** Reply kinds ("t"). */
    public const HELLO = 'hello';
    public const UNAVAILABLE = 'unavailable';
    public const STARTED = 'started';
    public const FAILED = 'failed';
    public const EXITED = 'exited';

    /** Bytes of one request (its environment is most of it). */
    public const MAX_REQUEST = 1 << 20;
    /** Descriptors one request may carry: stdin, stdout, stderr and 13 more. */
    public const MAX_FDS = 16;

    // Linux's numbers (the same on x86-64 and arm64).
    private const POLLIN = 0x001;
    private const MSG_NOSIGNAL = 0x4000;
    private const MSG_TRUNC = 0x20;
    private const MSG_CTRUNC = 0x08;
    private const MSG_CMSG_CLOEXEC = 0x40000000;
    private const SOL_SOCKET = 1;
    private const SCM_RIGHTS = 1;
    private const SFD_NONBLOCK = 0x800;
    private const SFD_CLOEXEC = 0x80000;
    private const PR_SET_PDEATHSIG = 1;
    private const F_DUPFD = 0;
    private const EINTR = 4;

    private const LIBC = <<<'C'
        struct iovec { void *iov_base; size_t iov_len; };
        struct msghdr { void *msg_name; unsigned int msg_namelen; struct iovec *msg_iov; size_t msg_iovlen;
                        void *msg_control; size_t msg_controllen; int msg_flags; };
        struct cmsghdr { size_t cmsg_len; int cmsg_level; int cmsg_type; };
        struct pollfd { int fd; short events; short revents; };
        typedef struct { unsigned long val[16]; } sigset_t;
        long recvmsg(int fd, struct msghdr *msg, int flags);
        long send(int fd, const char *buf, size_t len, int flags);
        long read(int fd, void *buf, size_t len);
        int poll(struct pollfd *fds, unsigned long nfds, int timeout);
        int sigemptyset(sigset_t *set);
        int sigaddset(sigset_t *set, int sig);
        int signalfd(int fd, const sigset_t *mask, int flags);
        int dup2(int from, int to);
        int fcntl(int fd, int cmd, ...);
        int close(int fd);
        int setpgid(int pid, int pgid);
        int getppid(void);
        int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5);
        int *__errno_location(void);
        void _exit(int status);
        C;

    /** The call this process is the child of; null in the parent. */
    private static ?ForkCall $call = null;

    /** @var array<int, true> children not reaped yet */
    private array $children = [];

    /** @var list<int> the signal mask the parent started with, which its children get back */
    private array $mask = [];

    private \FFI $libc;
    /** How children end after their request, or null: PHP's own exit (ForkExit.php). */
    private ?ForkExit $quickExit = null;
    /** Where PHP records the main script, or null when it is not where expected (ForkMainScript.php). */
    private ?ForkMainScript $mainScript = null;
    private int $signalFd;
    private int $pid;
    private string $maxTime;
    private \FFI\CData $buffer;
    private \FFI\CData $control;

    private function __construct()
    {
    }

    /**
     * Run the parent: returns only in a child, set up as `php script.php`
     * would be; the parent itself exits once the aggregator closes the
     * control socket and its last child is reaped.
     */
    public static function serve(): void
    {
        $server = new self();
        $why = $server->setUp();
        if ($why !== null) {
            $out = @fopen('php://fd/' . self::CONTROL_FD, 'wb');
            if ($out !== false) {
                @fwrite($out, self::encode(['t' => self::UNAVAILABLE, 'why' => $why]));
            }
            exit(0);
        }
        self::$call = $server->loop();
    }

    /** The child's auto_prepend_file (what PHP would run before the script), or "". */
    public static function prepend(): string
    {
        return (string)ini_get('auto_prepend_file');
    }

    /** The child's script, to include. */
    public static function script(): string
    {
        return self::$call?->path() ?? throw new \LogicException('ForkServer::script() outside a child');
    }

    /** The child's auto_append_file, or "". */
    public static function append(): string
    {
        return (string)ini_get('auto_append_file');
    }

    /** Why this PHP cannot be a fork server, or null once it is ready and said hello. */
    private function setUp(): ?string
    {
        if (PHP_OS_FAMILY !== 'Linux') {
            return 'the fork server needs Linux (prctl, signalfd), this is ' . PHP_OS_FAMILY;
        }
        if (!function_exists('pcntl_fork') || !function_exists('pcntl_sigprocmask')) {
            return 'ext-pcntl is not loaded';
        }
        if (!extension_loaded('ffi')) {
            return 'ext-ffi is not loaded (php -n loads no extension; install php-ffi, or give the command -d extension=ffi)';
        }
        try {
            $this->libc = \FFI::cdef(self::LIBC);
        } catch (\Throwable $e) {
            return 'FFI: ' . $e->getMessage() . ' (ffi.enable=' . ini_get('ffi.enable') . '; preload or 1 allows the CLI)';
        }
        $this->pid = getmypid();
        // ForkExit's test children are reaped before SIGCHLD is blocked.
        $quick = getenv(ForkExit::OFF) === '0' ? ForkExit::OFF . '=0 turns it off' : ForkExit::prepare();
        $slow = is_string($quick) ? $quick : null;
        $this->quickExit = $quick instanceof ForkExit ? $quick : null;
        $this->mainScript = ForkMainScript::prepare();
        pcntl_sigprocmask(SIG_BLOCK, [SIGCHLD], $this->mask);
        $set = $this->libc->new('sigset_t');
        $this->libc->sigemptyset(\FFI::addr($set));
        $this->libc->sigaddset(\FFI::addr($set), SIGCHLD);
        $this->signalFd = $this->libc->signalfd(-1, \FFI::addr($set), self::SFD_NONBLOCK | self::SFD_CLOEXEC);
        if ($this->signalFd < 0) {
            return 'signalfd failed: errno ' . $this->errno();
        }
        // Outside the PHP heap (persistent), so a child's memory_get_usage()
        // and memory_limit do not count them.
        $this->buffer = $this->libc->new('char[' . self::MAX_REQUEST . ']', false, true);
        $this->control = $this->libc->new('unsigned char[' . (64 + 4 * self::MAX_FDS) . ']', false, true);
        // The parent waits, it never runs a script: PHP's timer (CPU time
        // on Linux) would end it; each child sets its own again.
        $this->maxTime = (string)ini_get('max_execution_time');
        set_time_limit(0);
        $hello = ['t' => self::HELLO, 'pid' => $this->pid, 'php' => PHP_VERSION, 'quick_exit' => $slow === null];
        if ($slow !== null) {
            $hello['why'] = $slow;
        }
        return $this->tell($hello) ? null : 'the control socket is closed';
    }

    /** Serve requests and reap children; returns the call in a child. */
    private function loop(): ForkCall
    {
        $fds = $this->libc->new('struct pollfd[2]');
        $fds[1]->fd = $this->signalFd;
        $fds[1]->events = self::POLLIN;
        $open = true;
        while ($open || $this->children !== []) {
            $fds[0]->fd = $open ? self::CONTROL_FD : -1; // poll skips a negative fd
            $fds[0]->events = self::POLLIN;
            $fds[0]->revents = 0;
            $fds[1]->revents = 0;
            if ($this->libc->poll($fds, 2, -1) < 0) {
                if ($this->errno() === self::EINTR) {
                    continue;
                }
                throw new \RuntimeException('poll failed: errno ' . $this->errno());
            }
            if ($fds[1]->revents !== 0) {
                $this->reap();
            }
            if ($fds[0]->revents === 0) {
                continue;
            }
            $request = $this->receive();
            if ($request === null) {
                $open = false; // the aggregator is done with this parent
                continue;
            }
            $call = $this->start(...$request);
            if ($call !== null) {
                return $call;
            }
        }
        exit(0);
    }

    /**
     * One request: its JSON and its descriptors, or null when the
     * aggregator closed its end.
     *
     * @return array{0: string, 1: list<int>}|null
     */
    private function receive(): ?array
    {
        $iov = $this->libc->new('struct iovec');
        $iov->iov_base = \FFI::addr($this->buffer);
        $iov->iov_len = self::MAX_REQUEST;
        $msg = $this->libc->new('struct msghdr');
        $msg->msg_iov = \FFI::addr($iov);
        $msg->msg_iovlen = 1;
        $msg->msg_control = \FFI::addr($this->control);
        $msg->msg_controllen = \FFI::sizeof($this->control);
        do {
            $n = $this->libc->recvmsg(self::CONTROL_FD, \FFI::addr($msg), self::MSG_CMSG_CLOEXEC);
        } while ($n < 0 && $this->errno() === self::EINTR);
        if ($n <= 0) {
            return null;
        }
        $fds = $this->rights($msg);
        if (($msg->msg_flags & (self::MSG_TRUNC | self::MSG_CTRUNC)) !== 0) {
            $this->closeAll($fds);
            return ['{}', []]; // refused by start() as no request
        }
        return [\FFI::string($this->buffer, $n), $fds];
    }

    /** @return list<int> the descriptors a message carried */
    private function rights(\FFI\CData $msg): array
    {
        $header = \FFI::sizeof($this->libc->type('struct cmsghdr'));
        if ($msg->msg_controllen < $header) {
            return [];
        }
        $cmsg = $this->libc->cast('struct cmsghdr *', \FFI::addr($this->control));
        if ($cmsg->cmsg_level !== self::SOL_SOCKET || $cmsg->cmsg_type !== self::SCM_RIGHTS) {
            return [];
        }
        $bytes = $this->libc->cast('unsigned char *', \FFI::addr($this->control));
        $ints = $this->libc->cast('int *', $bytes + $header);
        $fds = [];
        for ($i = 0, $n = intdiv($cmsg->cmsg_len - $header, 4); $i < $n; $i++) {
            $fds[] = $ints[$i];
        }
        return $fds;
    }

    /**
     * Fork a child for the request; null in the parent, the call in the child.
     *
     * @param list<int> $fds
     */
    private function start(string $json, array $fds): ?ForkCall
    {
        try {
            $call = ForkCall::fromJson($json);
        } catch (\UnexpectedValueException $e) {
            $this->closeAll($fds);
            $this->tell(['t' => self::FAILED, 'id' => -1, 'error' => $e->getMessage()]);
            return null;
        }
        if (count($fds) < 3) {
            $this->closeAll($fds);
            $this->tell(['t' => self::FAILED, 'id' => $call->id, 'error' => 'the request carries ' . count($fds) . ' descriptors, not stdin, stdout and stderr']);
            return null;
        }
        $pid = pcntl_fork();
        if ($pid === 0) {
            $this->become($call, $fds);
            return $call;
        }
        $this->closeAll($fds);
        if ($pid < 0) {
            $this->tell(['t' => self::FAILED, 'id' => $call->id, 'error' => 'fork: ' . pcntl_strerror(pcntl_get_last_error())]);
            return null;
        }
        // The child does the same; whichever runs first, the group exists
        // before the aggregator learns the pid and may kill it.
        $this->libc->setpgid($pid, $pid);
        $this->children[$pid] = true;
        $this->tell(['t' => self::STARTED, 'id' => $call->id, 'pid' => $pid]);
        return null;
    }

    /** Reap every child that ended and report it. */
    private function reap(): void
    {
        $drain = $this->libc->new('char[1024]');
        while ($this->libc->read($this->signalFd, $drain, 1024) > 0) {
        }
        while (($pid = pcntl_waitpid(-1, $status, WNOHANG)) > 0) {
            unset($this->children[$pid]);
            $this->tell(['t' => self::EXITED, 'pid' => $pid, 'status' => $status]);
        }
    }

    /**
     * In the child: its own process group, death with the parent, the
     * parent's signal mask back, the call's descriptors as 0, 1, 2, 3…,
     * the quick exit, and the call's environment, directory, $argv and
     * $_SERVER.
     *
     * @param list<int> $fds
     */
    private function become(ForkCall $call, array $fds): void
    {
        $this->libc->setpgid(0, 0);
        $this->libc->prctl(self::PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        if ($this->libc->getppid() !== $this->pid) {
            $this->libc->_exit(1); // the parent died before prctl: nobody would reap or kill this child
        }
        pcntl_sigprocmask(SIG_SETMASK, $this->mask);
        $this->arrange($fds);
        $this->quickExit?->arm();
        if ($this->maxTime !== '0') {
            set_time_limit((int)$this->maxTime);
        }
        $call->applyEnv();
        if (!@chdir($call->dir)) {
            fwrite(STDERR, "chdir {$call->dir}: " . (error_get_last()['message'] ?? 'failed') . "\n");
            $this->libc->_exit(127);
        }
        $script = @fopen($call->path(), 'rb');
        if ($script === false) {
            echo "Could not open input file: {$call->script}\n"; // what the CLI says, on stdout, exit code 1
            exit(1);
        }
        fclose($script);
        $this->mainScript?->record((string)realpath($call->path()));
        $GLOBALS['argv'] = $call->argv;
        $GLOBALS['argc'] = count($call->argv);
        $_SERVER = $call->server(getenv(), (string)ini_get('variables_order'), microtime(true));
        clearstatcache(true);
        error_clear_last();
        memory_reset_peak_usage();
    }

    /**
     * Make the call's descriptors the child's 0, 1, 2, 3…, as os/exec
     * does: first move any that sits where another must go above them all,
     * then dup2() each into place (the STDIN/STDOUT/STDERR streams keep
     * their descriptor numbers and so now reach the call's pipes), then
     * close the originals and the parent's own.
     *
     * @param list<int> $fds
     */
    private function arrange(array $fds): void
    {
        $n = count($fds);
        foreach ($fds as $i => $fd) {
            if ($fd < $n) {
                $fds[$i] = $this->libc->fcntl($fd, self::F_DUPFD, $n);
            }
        }
        foreach ($fds as $i => $fd) {
            $this->libc->dup2($fd, $i);
        }
        foreach ([...$fds, self::CONTROL_FD, $this->signalFd] as $fd) {
            if ($fd >= $n) {
                $this->libc->close($fd);
            }
        }
    }

    /** @param list<int> $fds */
    private function closeAll(array $fds): void
    {
        foreach ($fds as $fd) {
            $this->libc->close($fd);
        }
    }

    /** Send one reply; false when the aggregator is gone. */
    private function tell(array $reply): bool
    {
        $bytes = self::encode($reply);
        return $this->libc->send(self::CONTROL_FD, $bytes, strlen($bytes), self::MSG_NOSIGNAL) === strlen($bytes);
    }

    private static function encode(array $reply): string
    {
        return json_encode($reply, JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE);
    }

    private function errno(): int
    {
        return $this->libc->__errno_location()[0];
    }
}

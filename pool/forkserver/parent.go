package forkserver

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// Timing of a parent.
const (
	// forkWait bounds how long a call waits for the parent to fork it (a
	// fork takes well under a millisecond; a parent this slow is stuck).
	forkWait = 10 * time.Second
	// maxReply bounds one message from the parent (its replies are tiny).
	maxReply = 64 << 10
	// keptLines is how many lines of the parent's own output a failed
	// start quotes: the first ones (PHP's message comes before its trace).
	keptLines = 5
)

// Reply kinds, as src/ForkServer.php names them.
const (
	replyHello       = "hello"
	replyUnavailable = "unavailable"
	replyStarted     = "started"
	replyFailed      = "failed"
	replyExited      = "exited"
)

// errRetired is a call that reached a parent being replaced: Start tries
// the current one.
var errRetired = errors.New("the fork server is being replaced")

// UnavailableError is a PHP that cannot be a fork server, in its own words.
type UnavailableError struct {
	Command string // the parent's command (php and flags)
	Reason  string
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("fork server for %s unavailable: %s", e.Command, e.Reason)
}

// Unwrap makes errors.Is(err, ErrUnavailable) hold.
func (e *UnavailableError) Unwrap() error { return ErrUnavailable }

// ErrUnavailable is a command whose calls cannot go through a fork server
// now: its PHP lacks what the parent needs, or the parent could not start.
var ErrUnavailable = errors.New("fork server unavailable")

// reply is one message from the parent.
type reply struct {
	T      string `json:"t"`
	ID     int64  `json:"id"`
	PID    int    `json:"pid"`
	Status int    `json:"status"`
	Error  string `json:"error"`
	Why    string `json:"why"`
	// QuickExit (hello): children skip PHP's module shutdown (src/ForkExit.php); Why says why not.
	QuickExit bool `json:"quick_exit"`
}

// request is one call as the parent reads it (src/ForkCall.php), but for
// its "id", which withID adds.
type request struct {
	Dir    string   `json:"dir"`
	Env    []string `json:"env"`
	Script string   `json:"script"`
	Argv   []string `json:"argv"`
}

// parent is one warm PHP parent and its conversation: its reader
// goroutine owns the replies; mu guards the calls waiting for them.
type parent struct {
	cmd     *exec.Cmd
	command string // php and flags, for log lines
	conn    *net.UnixConn
	log     *zap.Logger
	dead    chan struct{} // closed once the reader ended: no reply will come
	exited  chan struct{} // closed once the process was waited for
	quiet   chan struct{} // closed once the reader and the output logger are done logging
	logging sync.WaitGroup

	mu       sync.Mutex
	writeMu  sync.Mutex // one request at a time on the socket
	nextID   int64
	forking  map[int64]*pendingFork // requests not answered yet
	running  map[int]*Proc          // children not reported ended, by pid
	retired  bool
	quick    bool     // its children skip PHP's module shutdown (src/ForkExit.php)
	firstOut []string // the parent's first lines of output
	waitErr  error    // how the process ended; read after exited
}

// pendingFork is a request waiting for "started" or "failed".
type pendingFork struct {
	proc   *Proc
	answer chan error // one value: nil once forked (proc.pid set)
}

// startParent starts `php [flags] -r entry` with the control socket as fd 3
// and waits for its hello.
func startParent(c Command, cfg Config) (*parent, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "forkserver"), os.NewFile(uintptr(fds[1]), "forkserver-php")
	fc, err := net.FileConn(ours)
	ours.Close() // FileConn holds a dup
	if err != nil {
		theirs.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	p := &parent{command: c.String(), conn: fc.(*net.UnixConn), log: cfg.Log.With(zap.String("fork_server", c.String())),
		dead: make(chan struct{}), exited: make(chan struct{}), quiet: make(chan struct{}), forking: map[int64]*pendingFork{}, running: map[int]*Proc{}}
	args := append(append([]string{}, c.Flags...), "-r", entry(cfg.Runtime))
	p.cmd = exec.Command(c.PHP, args...)
	p.cmd.Dir, p.cmd.Env = cfg.Dir, cfg.Env
	p.cmd.ExtraFiles = []*os.File{theirs}
	// Its own group (a call's kill never reaches it) and death with us.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := p.outputPipe()
	if err != nil {
		theirs.Close()
		p.conn.Close()
		return nil, err
	}
	err = p.cmd.Start()
	theirs.Close()
	out.Close()
	if err != nil {
		p.conn.Close()
		return nil, err
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	if err := p.hello(cfg.StartTimeout); err != nil {
		p.kill()
		<-p.exited
		p.conn.Close()
		p.logging.Wait()
		close(p.quiet)
		var u *UnavailableError
		if !errors.As(err, &u) {
			err = p.withOutput(err)
		}
		return nil, err
	}
	p.logging.Add(1)
	go p.read()
	go func() {
		p.logging.Wait()
		close(p.quiet)
	}()
	return p, nil
}

// outputPipe sends the parent's stdout and stderr (PHP's start-up
// warnings; nothing else, normally) to the log, line by line; the
// returned end is the process's, to close once it started.
func (p *parent) outputPipe() (*os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	p.logging.Add(1)
	go func() {
		defer p.logging.Done()
		defer r.Close()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 4096), 64<<10)
		for sc.Scan() {
			line := strings.TrimRight(sc.Text(), "\r")
			if line == "" {
				continue
			}
			p.mu.Lock()
			if len(p.firstOut) < keptLines {
				p.firstOut = append(p.firstOut, line)
			}
			p.mu.Unlock()
			p.log.Warn("fork server output", zap.String("line", line))
		}
		_, _ = io.Copy(io.Discard, r)
	}()
	return w, nil
}

// withOutput adds the parent's first lines of output to a start error.
func (p *parent) withOutput(err error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.firstOut) == 0 {
		return err
	}
	return fmt.Errorf("%w; php said: %s", err, strings.Join(p.firstOut, " | "))
}

// hello waits for the parent's first message.
func (p *parent) hello(timeout time.Duration) error {
	_ = p.conn.SetReadDeadline(time.Now().Add(timeout))
	r, err := p.receive(make([]byte, maxReply))
	_ = p.conn.SetReadDeadline(time.Time{})
	switch {
	case err != nil:
		return fmt.Errorf("no hello from the fork server: %w", err)
	case r.T == replyUnavailable:
		return &UnavailableError{Command: p.command, Reason: r.Why}
	case r.T != replyHello:
		return fmt.Errorf("the fork server said %q before hello", r.T)
	case r.QuickExit:
		p.quick = true
	default:
		p.log.Info("fork server children exit PHP's own way, about 7 ms of CPU more each", zap.String("why", r.Why))
	}
	return nil
}

// receive reads one reply into buf (maxReply bytes; hello and the reader
// each have their own).
func (p *parent) receive(buf []byte) (reply, error) {
	n, _, _, _, err := p.conn.ReadMsgUnix(buf, nil)
	if err != nil {
		return reply{}, err
	}
	if n == 0 {
		return reply{}, io.EOF
	}
	var r reply
	if err := json.Unmarshal(buf[:n], &r); err != nil {
		return reply{}, fmt.Errorf("reply %q: %w", buf[:n], err)
	}
	return r, nil
}

// read hands each reply to its call until the parent closes its end;
// then every call still waiting ends with ErrParentDied.
func (p *parent) read() {
	defer p.logging.Done()
	buf := make([]byte, maxReply)
	for {
		r, err := p.receive(buf)
		if err != nil {
			break
		}
		p.dispatch(r)
	}
	p.mu.Lock()
	forking, running := p.forking, p.running
	p.forking, p.running = map[int64]*pendingFork{}, map[int]*Proc{}
	retired := p.retired
	p.retired = true // a call registering after this would wait for nobody
	p.mu.Unlock()
	close(p.dead)
	for _, f := range forking {
		f.answer <- ErrParentDied
	}
	for _, c := range running {
		c.status <- ErrParentDied
	}
	if !retired || len(forking)+len(running) > 0 {
		status := "still running"
		select {
		case <-p.exited:
			status = "exit status 0"
			if p.waitErr != nil {
				status = p.waitErr.Error()
			}
		case <-time.After(drainWait):
		}
		p.log.Warn("fork server ended", zap.Int("pid", p.cmd.Process.Pid), zap.String("status", status),
			zap.Int("calls_cut_short", len(forking)+len(running)))
	} else {
		p.log.Debug("fork server retired", zap.Int("pid", p.cmd.Process.Pid))
	}
	p.conn.Close()
}

func (p *parent) dispatch(r reply) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch r.T {
	case replyStarted, replyFailed:
		f := p.forking[r.ID]
		if f == nil {
			p.log.Warn("fork server answered a request nobody waits for", zap.Int64("id", r.ID), zap.String("t", r.T))
			return
		}
		delete(p.forking, r.ID)
		if r.T == replyFailed {
			f.answer <- fmt.Errorf("fork server: %s", r.Error)
			return
		}
		f.proc.pid = r.PID
		p.running[r.PID] = f.proc
		f.answer <- nil
	case replyExited:
		if c := p.running[r.PID]; c != nil {
			delete(p.running, r.PID)
			c.status <- statusError(r.Status)
		}
	default:
		p.log.Warn("fork server said something unknown", zap.String("t", r.T))
	}
}

// start sends one call to the parent and waits until it is forked. It
// closes s.ExtraFiles once it sent them (the parent has its copies); an
// error before that leaves them open: errRetired when this parent takes
// no more calls (another may), ErrUnavailable when no parent can take
// this one.
func (p *parent) start(c Command, s Spec, dir string) (*Proc, error) {
	msg, err := json.Marshal(request{Dir: dir, Env: callEnv(s.Env, dir), Script: c.Script,
		Argv: append([]string{c.Script}, c.Args...)})
	if err != nil {
		return nil, err
	}
	pipes, err := newCallPipes()
	if err != nil {
		return nil, err
	}
	proc := &Proc{status: make(chan error, 1), done: make(chan struct{})}
	f := &pendingFork{proc: proc, answer: make(chan error, 1)}
	id, ok := p.register(f)
	if !ok {
		pipes.closeAll()
		return nil, errRetired
	}
	msg = withID(msg, id)
	p.writeMu.Lock()
	_, _, err = p.conn.WriteMsgUnix(msg, syscall.UnixRights(pipes.childEnds(s.ExtraFiles)...), nil)
	p.writeMu.Unlock()
	if err != nil {
		p.forget(id)
		pipes.closeAll()
		if errors.Is(err, syscall.EMSGSIZE) {
			return nil, fmt.Errorf("%w: the call's request (%d bytes, its environment mostly) is bigger than the control socket takes", ErrUnavailable, len(msg))
		}
		p.mu.Lock()
		p.retired = true // gone: the next lookup starts another
		p.mu.Unlock()
		return nil, errRetired
	}
	// The parent holds its own copies now.
	pipes.closeChildEnds()
	closeFiles(s.ExtraFiles...)
	select {
	case err = <-f.answer:
	case <-time.After(forkWait):
		err = fmt.Errorf("the fork server did not fork within %v", forkWait)
		p.forget(id)
		p.kill() // stuck: its calls end, the next Start gets a new parent
	}
	if err != nil {
		pipes.closeOurs()
		return nil, err
	}
	proc.run(pipes, s)
	return proc, nil
}

// register numbers a request and waits for its answer; false once the
// parent takes no more calls.
func (p *parent) register(f *pendingFork) (int64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.retired {
		return 0, false
	}
	p.nextID++
	p.forking[p.nextID] = f
	return p.nextID, true
}

// withID puts the request's id into its JSON (the id is known only once
// the request is registered, after the encoding that may fail).
func withID(msg []byte, id int64) []byte {
	return append([]byte(`{"id":`+strconv.FormatInt(id, 10)+`,`), msg[1:]...)
}

// forget drops a request that will get no answer.
func (p *parent) forget(id int64) {
	p.mu.Lock()
	delete(p.forking, id)
	p.mu.Unlock()
}

// callDir is the call's working directory, absolute; an error as os/exec
// gives one when it does not exist.
func callDir(dir string) (string, error) {
	if dir == "" {
		return os.Getwd()
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return "", &os.PathError{Op: "chdir", Path: dir, Err: errors.Unwrap(err)}
	}
	if !st.IsDir() {
		return "", &os.PathError{Op: "chdir", Path: dir, Err: syscall.ENOTDIR}
	}
	return abs, nil
}

// alive reports whether the parent can take calls.
func (p *parent) alive() bool {
	select {
	case <-p.dead:
		return false
	default:
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.retired
}

// retire takes no more calls: the parent finishes those in flight,
// reports them and exits once we close our sending side.
func (p *parent) retire() {
	p.mu.Lock()
	p.retired = true
	p.mu.Unlock()
	_ = p.conn.CloseWrite()
}

// kill ends the parent and every child it reported (their groups), and
// does not wait.
func (p *parent) kill() {
	p.mu.Lock()
	p.retired = true
	pids := make([]int, 0, len(p.running))
	for pid := range p.running {
		pids = append(pids, pid)
	}
	p.mu.Unlock()
	for _, pid := range pids {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
}

// calls is how many calls the parent has forked and not reported ended.
func (p *parent) calls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.running)
}

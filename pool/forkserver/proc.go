package forkserver

import (
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// drainWait bounds how long the end of a call waits for its stdout and
// stderr to close once its process group was killed: a process that left
// the group (setsid) may hold them open.
const drainWait = time.Second

// ErrParentDied is a call's error when its parent ended before reporting
// how the call's child ended (the child dies with it: PR_SET_PDEATHSIG).
var ErrParentDied = errors.New("the fork server's PHP parent died")

// Spec is one call to start: what os/exec would be given for `php script.php`.
type Spec struct {
	Words      []string   // php [flags] script.php args…
	Dir        string     // its working directory; "" = the aggregator's
	Env        []string   // its environment; nil = the aggregator's (with PWD=Dir, as os/exec); the last of a repeated name wins
	Stdin      []byte     // what it reads on stdin, then EOF; nil: EOF at once
	ExtraFiles []*os.File // its fds 3, 4, …; Start closes them, but on ErrNotEligible and ErrUnavailable (for the caller's fork+exec)
	Stdout     io.Writer  // gets its stdout (the caller applies its output limit); nil discards it
	Stderr     io.Writer  // gets its stderr; nil discards it
}

// Proc is one call's child: a fork of the parent, leader of its own
// process group.
type Proc struct {
	pid    int
	status chan error    // the parent's report (nil, *ExitError) or ErrParentDied; one value
	done   chan struct{} // closed once it ended, its group was killed and its output was read
	err    error         // how it ended; read after done
	ended  atomic.Bool   // its end was reported: Kill and Signal do nothing
}

// PID is the child's process id (its process group's too).
func (p *Proc) PID() int { return p.pid }

// Done is closed once the child ended, what it left in its process group
// was killed and its stdout and stderr were read to the end.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is how the child ended, once Done is closed: nil for exit status 0,
// an *ExitError otherwise, or ErrParentDied.
func (p *Proc) Err() error { return p.err }

// Kill SIGKILLs the child's process group (what it started with it).
func (p *Proc) Kill() {
	if !p.ended.Load() {
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	}
}

// Signal sends sig to the child alone (SIGUSR1 asks the prepend file for a backtrace).
func (p *Proc) Signal(sig syscall.Signal) error {
	if p.ended.Load() {
		return os.ErrProcessDone
	}
	return syscall.Kill(p.pid, sig)
}

// ExitError is a child that did not exit with status 0, as the parent's
// waitpid() saw it.
type ExitError struct {
	Status syscall.WaitStatus
}

// Error says it as os/exec does for `php script.php`: "exit status 3",
// "signal: killed".
func (e *ExitError) Error() string {
	var s string
	switch {
	case e.Status.Exited():
		s = "exit status " + strconv.Itoa(e.Status.ExitStatus())
	case e.Status.Signaled():
		s = "signal: " + e.Status.Signal().String()
	default:
		s = "wait status " + strconv.Itoa(int(e.Status))
	}
	if e.Status.CoreDump() {
		s += " (core dumped)"
	}
	return s
}

// ExitCode is the exit status, or -1 when a signal ended it (as os.ProcessState).
func (e *ExitError) ExitCode() int { return e.Status.ExitStatus() }

// Sys is the wait status, as os.ProcessState.Sys gives it.
func (e *ExitError) Sys() any { return e.Status }

// statusError is a reported wait status as Err gives it.
func statusError(raw int) error {
	ws := syscall.WaitStatus(uint32(raw))
	if ws.Exited() && ws.ExitStatus() == 0 {
		return nil
	}
	return &ExitError{Status: ws}
}

// callPipes are one call's three pipes: the child's ends go to the parent
// (in blocking mode, as os/exec passes files), ours stay in Go's poller so
// that closing them ends a read or write that would block.
type callPipes struct {
	inR, inW, outR, outW, errR, errW *os.File
}

func newCallPipes() (*callPipes, error) {
	var c callPipes
	var err error
	if c.inR, c.inW, err = os.Pipe(); err != nil {
		return nil, err
	}
	if c.outR, c.outW, err = os.Pipe(); err != nil {
		closeFiles(c.inR, c.inW)
		return nil, err
	}
	if c.errR, c.errW, err = os.Pipe(); err != nil {
		closeFiles(c.inR, c.inW, c.outR, c.outW)
		return nil, err
	}
	return &c, nil
}

// childEnds are the descriptors the child gets as 0, 1, 2, 3…
func (c *callPipes) childEnds(extra []*os.File) []int {
	fds := []int{int(c.inR.Fd()), int(c.outW.Fd()), int(c.errW.Fd())} // Fd puts them in blocking mode
	for _, f := range extra {
		fds = append(fds, int(f.Fd()))
	}
	return fds
}

func (c *callPipes) closeChildEnds() { closeFiles(c.inR, c.outW, c.errW) }
func (c *callPipes) closeOurs()      { closeFiles(c.inW, c.outR, c.errR) }
func (c *callPipes) closeAll()       { c.closeChildEnds(); c.closeOurs() }

// run feeds stdin, copies stdout and stderr, and ends p once the parent
// reported the child's end: its group is killed, its output drained.
func (p *Proc) run(c *callPipes, s Spec) {
	go func() {
		if len(s.Stdin) > 0 {
			_, _ = c.inW.Write(s.Stdin) // fails once nobody can read it: the child is gone
		}
		c.inW.Close()
	}()
	outDone, errDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(outDone); copyOut(c.outR, s.Stdout) }()
	go func() { defer close(errDone); copyOut(c.errR, s.Stderr) }()
	go func() {
		p.err = <-p.status
		_ = syscall.Kill(-p.pid, syscall.SIGKILL) // what it left running in its group dies with it
		p.ended.Store(true)
		// A process outside the group may hold the pipes: stop reading then.
		drain(drainWait, func() { closeFiles(c.outR, c.errR) }, outDone, errDone)
		c.inW.Close() // a write such a process does not read must not block forever
		close(p.done)
	}()
}

// drain waits until every done is closed; past timeout it calls stop
// (which must make them close) and waits for them.
func drain(timeout time.Duration, stop func(), done ...<-chan struct{}) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for _, d := range done {
		select {
		case <-d:
		case <-t.C:
			stop()
			<-d
		}
	}
}

// copyOut copies r to w (or discards it) until r ends, closes r, and
// closes w when it is an io.Closer (the stderr line splitter emits its
// last line then).
func copyOut(r *os.File, w io.Writer) {
	defer r.Close()
	if w == nil {
		w = io.Discard
	}
	_, _ = io.Copy(w, r)
	if c, ok := w.(io.Closer); ok {
		_ = c.Close()
	}
}

func closeFiles(fs ...*os.File) {
	for _, f := range fs {
		if f != nil {
			f.Close()
		}
	}
}

// callEnv is the environment os/exec would give the call: Env, or ours
// with PWD=dir when Env is nil; the last value of a repeated name, at its
// last place; entries without "=" dropped.
func callEnv(env []string, dir string) []string {
	if env == nil {
		env = append(os.Environ(), "PWD="+dir)
	}
	seen := make(map[string]bool, len(env))
	out := make([]string, 0, len(env))
	for i := len(env) - 1; i >= 0; i-- {
		name, _, ok := strings.Cut(env[i], "=")
		if !ok || seen[name] {
			continue
		}
		seen[name] = true
		out = append(out, env[i])
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

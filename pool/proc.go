package pool

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Timing of one PHP process.
const (
	// drainWait bounds how long the end of a process waits for its pipes to
	// close once its process group was killed: a child that left the group
	// (setsid) may hold them open.
	drainWait = time.Second
	// maxLogLine bounds one logged line of PHP output; longer lines are split.
	maxLogLine = 8 << 10
)

// process is a PHP process started by fork+exec, the Process of both
// default factories (PipeWorkers, ForkExec). It runs in its own process
// group, so a kill reaches everything it forked, with Pdeathsig, so it
// dies if the server dies. Its stdout and stderr are our own pipes, read
// by our own goroutines: when it exits, its whole group is killed at once
// and what it wrote is drained, so neither a graceful exit nor a
// background child can leave processes behind or hold the end of the
// process up (SPEC §11).
type process struct {
	cmd    *exec.Cmd
	pid    int
	exited chan struct{} // closed once it exited, its group was killed and its output was read
	exit   Exit          // how it exited; read after exited

	errRaw   syscall.RawConn // our end of its stderr, for takeStderr and SettleStderr
	errMu    sync.Mutex      // held while bytes leave the stderr pipe, so FIONREAD and errTaken agree
	errTaken atomic.Int64    // bytes of stderr taken off the pipe
	errRead  atomic.Int64    // bytes of stderr taken and handled
}

// procSpec is how to start a process.
type procSpec struct {
	words  []string
	dir    string
	env    []string
	stdin  []byte     // what it reads on stdin (then EOF); nil: /dev/null
	extra  []*os.File // its fds 3, 4, ...; closed here once it started
	stdout io.Writer  // gets its stdout; nil discards it
	stderr io.Writer  // gets its stderr; nil discards it
}

// startProcess starts a process; on error nothing is left running.
func startProcess(s procSpec) (*process, error) {
	outR, outW, err := os.Pipe()
	if err != nil {
		closeAll(s.extra)
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		closeAll(append(s.extra, outR, outW))
		return nil, err
	}
	cmd := exec.Command(s.words[0], s.words[1:]...)
	cmd.Dir = s.dir
	cmd.Env = s.env
	cmd.Stdout, cmd.Stderr = outW, errW // files: passed as they are, no copying goroutines in os/exec
	if s.stdin != nil {
		cmd.Stdin = bytes.NewReader(s.stdin) // copied by os/exec's goroutine, which Wait waits for
	}
	cmd.ExtraFiles = s.extra
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	closeAll(append(s.extra, outW, errW)) // the child has its copies
	if err != nil {
		closeAll([]*os.File{outR, errR})
		return nil, err
	}
	p := &process{cmd: cmd, pid: cmd.Process.Pid, exited: make(chan struct{})}
	p.errRaw, _ = errR.SyscallConn()
	var drained sync.WaitGroup
	drained.Add(2)
	go func() { defer drained.Done(); copyOut(outR, s.stdout, nil) }()
	go func() { defer drained.Done(); copyOut(errR, s.stderr, p) }()
	go func() {
		p.exit = exitOf(cmd.Wait())
		p.Kill() // what it left running in its group dies with it
		if !waitTimeout(&drained, drainWait) {
			// A child outside the group holds the pipes: stop reading.
			outR.Close()
			errR.Close()
			drained.Wait()
		}
		close(p.exited)
	}()
	return p, nil
}

// PID is its process id.
func (p *process) PID() int { return p.pid }

// Signal sends sig to the process itself (not its group).
func (p *process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Kill SIGKILLs the process group.
func (p *process) Kill() { killGroup(p.pid) }

// Done is closed once it exited, its group was killed and its output was read.
func (p *process) Done() <-chan struct{} { return p.exited }

// Exit is how it exited; valid once Done is closed.
func (p *process) Exit() Exit { return p.exit }

// copyOut copies r to w (or discards it) until r ends, then closes r. With
// p set it counts what it handled, for SettleStderr.
func copyOut(r *os.File, w io.Writer, p *process) {
	defer r.Close()
	if w == nil {
		w = io.Discard
	}
	read := r.Read
	if p != nil && p.errRaw != nil {
		read = p.takeStderr
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := read(buf)
		if n > 0 {
			_, _ = w.Write(buf[:n])
			if p != nil {
				p.errRead.Add(int64(n))
			}
		}
		if err != nil {
			if c, ok := w.(io.Closer); ok {
				_ = c.Close()
			}
			return
		}
	}
}

// takeStderr reads the stderr pipe, counting what it takes off it under
// errMu in the same step as the read: SettleStderr then never sees bytes
// that are neither in the pipe nor counted.
func (p *process) takeStderr(buf []byte) (int, error) {
	var n int
	var rerr error
	err := p.errRaw.Read(func(fd uintptr) bool {
		p.errMu.Lock()
		n, rerr = syscall.Read(int(fd), buf)
		if n > 0 {
			p.errTaken.Add(int64(n))
		}
		p.errMu.Unlock()
		return rerr != syscall.EAGAIN && rerr != syscall.EINTR // wait until the pipe is readable, then read again
	})
	switch {
	case err != nil:
		return 0, err
	case rerr != nil:
		return 0, rerr
	case n <= 0:
		return 0, io.EOF
	}
	return n, nil
}

// SettleStderr waits (at most wait) until what the process wrote to stderr
// so far has been handled: the bytes still in the pipe and those taken off
// it but not yet handled. PHP writes a job's warnings before its result
// frame, so calling this when the frame arrives ties them to the job.
func (p *process) SettleStderr(wait time.Duration) {
	if p.errRaw == nil {
		return
	}
	p.errMu.Lock()
	var pending int
	err := p.errRaw.Control(func(fd uintptr) {
		pending, _ = unix.IoctlGetInt(int(fd), unix.TIOCINQ) // FIONREAD: bytes in the pipe
	})
	target := p.errTaken.Load() + int64(pending)
	p.errMu.Unlock()
	if err != nil || p.errRead.Load() >= target {
		return
	}
	deadline := time.Now().Add(wait)
	for p.errRead.Load() < target && time.Now().Before(deadline) {
		time.Sleep(50 * time.Microsecond)
	}
}

// exitOf is the Exit of cmd.Wait's error.
func exitOf(err error) Exit {
	if err == nil {
		return Exit{}
	}
	if ee, ok := err.(*exec.ExitError); ok {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok {
			if ws.Signaled() {
				return Exit{Signal: ws.Signal(), CoreDump: ws.CoreDump()}
			}
			return Exit{Code: ws.ExitStatus(), CoreDump: ws.CoreDump()}
		}
	}
	return Exit{Err: err}
}

// killGroup SIGKILLs the process group led by pid.
func killGroup(pid int) {
	if pid > 0 {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}

func closeAll(fs []*os.File) {
	for _, f := range fs {
		if f != nil {
			f.Close()
		}
	}
}

// waitTimeout waits for wg at most d; false if it had to give up.
func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

package pool

import (
	"bytes"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// waitDelay bounds how long Wait waits for a process's stdout/stderr to close
// after it exited: a background child of a PHP script may hold them open.
const waitDelay = 2 * time.Second

// maxLogLine bounds one logged line of PHP output; longer lines are split.
const maxLogLine = 8 << 10

// command builds a PHP process in its own process group, so a kill reaches
// everything it forked, and with Pdeathsig, so it dies if the server dies.
func command(words []string, dir string, env []string) *exec.Cmd {
	cmd := exec.Command(words[0], words[1:]...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = waitDelay
	return cmd
}

// killGroup SIGKILLs the process group led by pid.
func killGroup(pid int) {
	if pid > 0 {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}

// lineWriter calls emit for each line written to it (without the newline),
// so PHP's stderr and stray stdout land in the log line by line. Close emits
// a last unterminated line.
type lineWriter struct {
	mu   sync.Mutex
	buf  []byte
	emit func(line string)
}

func newLineWriter(emit func(string)) *lineWriter { return &lineWriter{emit: emit} }

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			room := maxLogLine - len(w.buf)
			if len(p) < room {
				w.buf = append(w.buf, p...)
				break
			}
			w.buf = append(w.buf, p[:room]...)
			p = p[room:]
			w.flushLocked()
			continue
		}
		w.buf = append(w.buf, p[:i]...)
		p = p[i+1:]
		w.flushLocked()
	}
	return n, nil
}

func (w *lineWriter) flushLocked() {
	line := string(bytes.TrimRight(w.buf, "\r"))
	w.buf = w.buf[:0]
	if line != "" {
		w.emit(line)
	}
}

// Close emits what is left.
func (w *lineWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.flushLocked()
	}
	return nil
}

// limitBuffer keeps at most limit bytes; past that it calls over once and
// drops the rest, so a script printing gigabytes cannot exhaust memory.
// The buffer is a named field, not embedded: an embedded bytes.Buffer would
// lend limitBuffer its ReadFrom, and io.Copy (os/exec's stdout copier) would
// use that and bypass the limit. exceeded is read by Exec.run while the copier
// writes it.
type limitBuffer struct {
	buf      bytes.Buffer
	limit    int
	exceeded atomic.Bool
	over     func()
}

func (b *limitBuffer) Write(p []byte) (int, error) {
	if b.exceeded.Load() {
		return len(p), nil
	}
	if b.limit > 0 && b.buf.Len()+len(p) > b.limit {
		b.exceeded.Store(true)
		if b.over != nil {
			b.over()
		}
		return len(p), nil
	}
	return b.buf.Write(p)
}

// Bytes is what was kept; call it once the writes are over.
func (b *limitBuffer) Bytes() []byte { return b.buf.Bytes() }

// gate counts the calls in progress and refuses new ones once closed, so
// Close can wait for all of them without racing WaitGroup.Add against Wait.
type gate struct {
	mu     sync.Mutex
	closed bool
	calls  sync.WaitGroup
}

// enter admits a call; false once the gate is closed.
func (g *gate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.calls.Add(1)
	return true
}

func (g *gate) leave() { g.calls.Done() }

// closeAndWait refuses new calls and waits for those in progress.
func (g *gate) closeAndWait() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.calls.Wait()
}

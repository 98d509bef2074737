package pool

import (
	"bytes"
	"os/exec"
	"sync"
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
type limitBuffer struct {
	bytes.Buffer
	limit    int
	exceeded bool
	over     func()
}

func (b *limitBuffer) Write(p []byte) (int, error) {
	if b.exceeded {
		return len(p), nil
	}
	if b.limit > 0 && b.Len()+len(p) > b.limit {
		b.exceeded = true
		if b.over != nil {
			b.over()
		}
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

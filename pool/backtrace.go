package pool

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Backtraces of running PHP (docs/diagnostics.md): a process that ran
// Aggregator\Backtrace::install() (worker.php does; exec scripts get it from
// the prepend file) answers SIGUSR1 by writing its PHP stack to stderr,
// between two marker lines, in one write. backtraces picks those blocks out
// of the process's stderr lines and logs each as one line, tagged with the
// job it belongs to.

const (
	// backtraceReady is the line the PHP process writes once it has a
	// SIGUSR1 handler: before that, SIGUSR1 would kill it.
	backtraceReady = "AGGREGATOR-BACKTRACE-READY"
	backtraceBegin = "AGGREGATOR-BACKTRACE-BEGIN"
	backtraceEnd   = "AGGREGATOR-BACKTRACE-END"
	// BacktraceWait bounds how long a job whose time ran out may take to
	// write its backtrace before it is killed anyway.
	BacktraceWait = 200 * time.Millisecond
	// maxBacktraceLines bounds the frames kept of one block (PHP sends at most 101).
	maxBacktraceLines = 200
)

// Why a backtrace was taken; the message of its log line.
const (
	whySlow    = "slow job"          // the job ran past aggregator.pool.slowlog
	whyTimeout = "timeout backtrace" // the job's time ran out; it is killed next
	whyAsked   = "backtrace"         // a SIGUSR1 from elsewhere (an operator's kill -USR1)
)

// btRequest is a backtrace asked for and not yet written.
type btRequest struct {
	why   string
	job   *Job
	since time.Time     // when the job started
	done  chan struct{} // closed once it is logged, or will not come
}

// btLogger logs a backtrace: req is nil for one nobody here asked for;
// frames is empty and note says why when there is none.
type btLogger func(req *btRequest, frames []string, note string)

// backtraces watches one PHP process's stderr for backtrace blocks.
type backtraces struct {
	log btLogger

	mu      sync.Mutex
	ready   bool     // PHP said it answers SIGUSR1
	in      bool     // between the markers
	frames  []string // of the block being read
	dropped int      // frames past maxBacktraceLines
	pending *btRequest
}

func newBacktraces(log btLogger) *backtraces { return &backtraces{log: log} }

// line takes one line of stderr. It reports false for a line outside any
// block, which the caller logs as before.
func (b *backtraces) line(l string) bool {
	b.mu.Lock()
	switch {
	case l == backtraceReady && !b.in:
		b.ready = true
		b.mu.Unlock()
		return true
	case l == backtraceBegin:
		var req *btRequest
		var frames []string
		if b.in { // the last block never ended: log what came of it
			req, frames = b.takeLocked()
		}
		b.in = true
		b.mu.Unlock()
		if frames != nil {
			b.emit(req, frames, "incomplete: a new backtrace began before its end marker")
		}
		return true
	case !b.in:
		b.mu.Unlock()
		return false
	case l == backtraceEnd:
		req, frames := b.takeLocked()
		b.mu.Unlock()
		b.emit(req, frames, "")
		return true
	}
	if len(b.frames) < maxBacktraceLines {
		b.frames = append(b.frames, l)
	} else {
		b.dropped++
	}
	b.mu.Unlock()
	return true
}

// takeLocked ends the current block and hands over its frames and request.
func (b *backtraces) takeLocked() (*btRequest, []string) {
	frames := b.frames
	if frames == nil {
		frames = []string{}
	}
	if b.dropped > 0 {
		frames = append(frames, fmt.Sprintf("... %d more lines", b.dropped))
	}
	req := b.pending
	b.in, b.frames, b.dropped, b.pending = false, nil, 0, nil
	return req, frames
}

// emit logs a block, then tells whoever waits for it.
func (b *backtraces) emit(req *btRequest, frames []string, note string) {
	b.log(req, frames, note)
	if req != nil {
		close(req.done)
	}
}

// close is called once the process's stderr is closed (it exited): a block
// cut short is logged as it is, and nobody waits any longer.
func (b *backtraces) close() {
	b.mu.Lock()
	var req *btRequest
	var frames []string
	if b.in {
		req, frames = b.takeLocked()
	} else if req = b.pending; req != nil {
		b.pending = nil
		close(req.done)
		req = nil
	}
	b.mu.Unlock()
	if frames != nil {
		b.emit(req, frames, "incomplete: the process exited in the middle of its backtrace")
	}
}

// ask sends SIGUSR1 to p for a backtrace of job, which the log gets when
// PHP writes it. It returns the request, or nil when none was sent (after
// logging why): only a process that said it is ready gets SIGUSR1, whose
// default action would kill it.
func (b *backtraces) ask(p *os.Process, why string, job *Job, since time.Time) *btRequest {
	req := &btRequest{why: why, job: job, since: since, done: make(chan struct{})}
	b.mu.Lock()
	if !b.ready {
		b.mu.Unlock()
		b.log(req, nil, fmt.Sprintf("pid %d has no SIGUSR1 handler: no pcntl extension, or a script "+
			"run without the prepend file (aggregator.script.prepend), or it has not started yet", p.Pid))
		return nil
	}
	old := b.pending
	b.pending = req
	b.mu.Unlock()
	if old != nil {
		close(old.done)
	}
	if err := p.Signal(syscall.SIGUSR1); err != nil { // it has exited
		b.forget(req)
		return nil
	}
	return req
}

// slowlog asks for the backtrace of job (whySlow) if it is still running
// after d (0: never); call what it returns when the job is over, at the
// latest before the process gets another job. A backtrace asked for just
// before the end may come just after it: it stays tagged with its job.
func (b *backtraces) slowlog(p *os.Process, d time.Duration, job *Job, start time.Time) (over func()) {
	if d <= 0 {
		return func() {}
	}
	var mu sync.Mutex // ended and the signal exclude each other
	ended := false
	t := time.AfterFunc(d, func() {
		mu.Lock()
		defer mu.Unlock()
		if !ended {
			b.ask(p, whySlow, job, start)
		}
	})
	return func() {
		t.Stop()
		mu.Lock()
		ended = true
		mu.Unlock()
	}
}

// take asks for a backtrace and waits at most wait for it, or until exited
// is closed. A backtrace that does not come in time is logged as missing.
func (b *backtraces) take(p *os.Process, why string, job *Job, since time.Time, exited <-chan struct{}, wait time.Duration) {
	req := b.ask(p, why, job, since)
	if req == nil {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-req.done:
		return
	case <-exited:
		return
	case <-t.C:
	}
	b.mu.Lock()
	late := b.pending == req && !b.in // not even begun: PHP is stuck in a C call
	if late {
		b.pending = nil
	}
	b.mu.Unlock()
	if late {
		b.log(req, nil, fmt.Sprintf("PHP did not write it within %v: blocked in a C call "+
			"(a read on a pipe or socket, curl, a database query) where its signal handler cannot run", wait))
		close(req.done)
	}
}

// forget drops req if it is still pending, or with req nil whatever is
// pending: a backtrace that comes later is logged as asked by nobody.
func (b *backtraces) forget(req *btRequest) {
	b.mu.Lock()
	if b.pending == nil || (req != nil && b.pending != req) {
		b.mu.Unlock()
		return
	}
	req, b.pending = b.pending, nil
	b.mu.Unlock()
	close(req.done)
}

// backtraceFields are the fields of a backtrace's log line (but the pid).
func backtraceFields(job *Job, since time.Time, frames []string, note string) []zap.Field {
	fs := make([]zap.Field, 0, 8)
	if job != nil {
		fs = append(fs, zap.String("session", job.Session), zap.Int64("task", job.Task),
			zap.String("class", job.Class), zap.String("kind", job.Kind.String()))
	}
	if !since.IsZero() {
		fs = append(fs, zap.Duration("running", time.Since(since).Round(time.Millisecond)))
	}
	if len(frames) > 0 {
		at, _ := strings.CutPrefix(frames[0], "#0 ")
		fs = append(fs, zap.String("at", at), zap.String("backtrace", strings.Join(frames, "\n")))
	}
	if note != "" {
		if len(frames) == 0 {
			fs = append(fs, zap.String("no_backtrace", note))
		} else {
			fs = append(fs, zap.String("note", note))
		}
	}
	return fs
}

// backtraceLevel: asked-for backtraces (slowlog, timeout) are warnings; one
// an operator asked for with kill -USR1 is information.
func backtraceLevel(req *btRequest) zapcore.Level {
	if req == nil {
		return zapcore.InfoLevel
	}
	return zapcore.WarnLevel
}

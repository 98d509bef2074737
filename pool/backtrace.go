package pool

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/theaspect/aggregator"

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
	job   *aggregator.Job
	id    uint32        // the job's id in its worker; 0 for a process that runs one job (exec)
	since time.Time     // when the job started
	done  chan struct{} // closed once it is logged, or will not come
}

// btLogger logs a backtrace: req is nil for one nobody here asked for (then
// id names the job the section is about, 0 for none); frames is empty and
// note says why when there is none.
type btLogger func(req *btRequest, id uint32, frames []string, note string)

// btSection is one job's part of a block: a worker with jobs in flight
// heads each job's stack with a line "job <id>".
type btSection struct {
	id     uint32
	frames []string
}

// backtraces watches one PHP process's stderr for backtrace blocks.
type backtraces struct {
	log btLogger

	mu       sync.Mutex
	ready    bool        // PHP said it answers SIGUSR1
	in       bool        // between the markers
	sections []btSection // of the block being read
	lines    int         // frames kept of the block
	dropped  int         // frames past maxBacktraceLines
	pending  map[uint32]*btRequest
}

func newBacktraces(log btLogger) *backtraces {
	return &backtraces{log: log, pending: map[uint32]*btRequest{}}
}

// line takes one line of stderr. It reports false for a line outside any
// block, which the caller logs as PHP output.
func (b *backtraces) line(l string) bool {
	b.mu.Lock()
	switch {
	case l == backtraceReady && !b.in:
		b.ready = true
		b.mu.Unlock()
		return true
	case l == backtraceBegin:
		var emits []btEmit
		if b.in { // the last block never ended: log what came of it
			emits = b.takeLocked("incomplete: a new backtrace began before its end marker")
		}
		b.in = true
		b.mu.Unlock()
		b.emit(emits)
		return true
	case !b.in:
		b.mu.Unlock()
		return false
	case l == backtraceEnd:
		emits := b.takeLocked("")
		b.mu.Unlock()
		b.emit(emits)
		return true
	}
	if id, ok := sectionHead(l); ok {
		b.sections = append(b.sections, btSection{id: id, frames: []string{}})
	} else if b.lines < maxBacktraceLines {
		if len(b.sections) == 0 {
			b.sections = append(b.sections, btSection{frames: []string{}})
		}
		last := &b.sections[len(b.sections)-1]
		last.frames = append(last.frames, l)
		b.lines++
	} else {
		b.dropped++
	}
	b.mu.Unlock()
	return true
}

// sectionHead parses a "job <id>" line.
func sectionHead(l string) (uint32, bool) {
	rest, ok := strings.CutPrefix(l, "job ")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(rest, 10, 32)
	return uint32(n), err == nil
}

// btEmit is one backtrace to log.
type btEmit struct {
	req    *btRequest
	id     uint32
	frames []string
	note   string
}

// takeLocked ends the current block: each section goes to the request
// waiting for its job; with requests pending, sections nobody asked for are
// dropped (they came with the signal sent for another job); without, each
// is logged as asked by nobody.
func (b *backtraces) takeLocked(note string) []btEmit {
	sections := b.sections
	if len(sections) == 0 {
		sections = []btSection{{frames: []string{}}}
	}
	if b.dropped > 0 {
		last := &sections[len(sections)-1]
		last.frames = append(last.frames, fmt.Sprintf("... %d more lines", b.dropped))
	}
	b.in, b.sections, b.lines, b.dropped = false, nil, 0, 0
	var out []btEmit
	asked := len(b.pending) > 0
	for _, s := range sections {
		req := b.pending[s.id]
		if req == nil && s.id == 0 && len(sections) == 1 && len(b.pending) == 1 {
			for _, r := range b.pending { // a block without sections is the one job's
				req = r
			}
		}
		if req != nil {
			delete(b.pending, req.id)
			out = append(out, btEmit{req: req, id: s.id, frames: s.frames, note: note})
		} else if !asked {
			out = append(out, btEmit{id: s.id, frames: s.frames, note: note})
		}
	}
	return out
}

// emit logs blocks, then tells whoever waits for them.
func (b *backtraces) emit(es []btEmit) {
	for _, e := range es {
		b.log(e.req, e.id, e.frames, e.note)
		if e.req != nil {
			close(e.req.done)
		}
	}
}

// close is called once the process's stderr is closed (it exited): a block
// cut short is logged as it is, and nobody waits any longer.
func (b *backtraces) close() {
	b.mu.Lock()
	var emits []btEmit
	if b.in {
		emits = b.takeLocked("incomplete: the process exited in the middle of its backtrace")
	}
	left := b.pending
	b.pending = map[uint32]*btRequest{}
	b.mu.Unlock()
	b.emit(emits)
	for _, req := range left {
		close(req.done)
	}
}

// ask sends SIGUSR1 to p for a backtrace of job (id in its worker, 0 for
// an exec process), which the log gets when PHP writes it. It returns the
// request, or nil when none was sent (after logging why): only a process
// that said it is ready gets SIGUSR1, whose default action would kill it.
func (b *backtraces) ask(p Process, why string, job *aggregator.Job, id uint32, since time.Time) *btRequest {
	req := &btRequest{why: why, job: job, id: id, since: since, done: make(chan struct{})}
	b.mu.Lock()
	if !b.ready {
		b.mu.Unlock()
		b.log(req, id, nil, fmt.Sprintf("pid %d has no SIGUSR1 handler: no pcntl extension, or a script "+
			"run without the prepend file (aggregator.script.prepend), or it has not started yet", p.PID()))
		return nil
	}
	old := b.pending[id]
	b.pending[id] = req
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
// after d (0: never); call what it returns when the job is over. A
// backtrace asked for just before the end may come just after it: it stays
// tagged with its job.
func (b *backtraces) slowlog(p Process, d time.Duration, job *aggregator.Job, id uint32, start time.Time) (over func()) {
	if d <= 0 {
		return func() {}
	}
	var mu sync.Mutex // ended and the signal exclude each other
	ended := false
	t := time.AfterFunc(d, func() {
		mu.Lock()
		defer mu.Unlock()
		if !ended {
			b.ask(p, whySlow, job, id, start)
		}
	})
	return func() {
		t.Stop()
		mu.Lock()
		ended = true
		mu.Unlock()
	}
}

// take asks for a backtrace and waits at most wait for it, or until the
// process exits. A backtrace that does not come in time is logged as missing.
func (b *backtraces) take(p Process, why string, job *aggregator.Job, id uint32, since time.Time, wait time.Duration) {
	req := b.ask(p, why, job, id, since)
	if req == nil {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-req.done:
		return
	case <-p.Done():
		return
	case <-t.C:
	}
	b.mu.Lock()
	late := b.pending[id] == req && !b.in // not even begun: PHP is stuck in a C call
	if late {
		delete(b.pending, id)
	}
	b.mu.Unlock()
	if late {
		b.log(req, id, nil, fmt.Sprintf("PHP did not write it within %v: blocked in a C call "+
			"(a read on a pipe or socket, curl, a database query) where its signal handler cannot run", wait))
		close(req.done)
	}
}

// forget drops req if it is still pending: a backtrace that comes later is
// logged as asked by nobody.
func (b *backtraces) forget(req *btRequest) {
	b.mu.Lock()
	if b.pending[req.id] != req {
		b.mu.Unlock()
		return
	}
	delete(b.pending, req.id)
	b.mu.Unlock()
	close(req.done)
}

// overrun is what happens to a job whose time ran out in PHP code, in both
// modes: its backtrace is logged (at most BacktraceWait is spent waiting for
// it) when the time ran out (not when its browser left), then the process
// group is killed.
func overrun(p Process, b *backtraces, job *aggregator.Job, id uint32, since time.Time, deadline bool) {
	if deadline {
		b.take(p, whyTimeout, job, id, since, BacktraceWait)
	}
	p.Kill()
}

// backtraceFields are the fields of a backtrace's log line (but the pid).
func backtraceFields(job *aggregator.Job, since time.Time, frames []string, note string) []zap.Field {
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

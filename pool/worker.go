package pool

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roadrunner-server/goridge/v3/pkg/frame"
	"github.com/roadrunner-server/goridge/v3/pkg/pipe"
	"go.uber.org/zap"
)

// State is where a worker is in its life. Transitions (see next):
//
//	starting -> idle <-> busy -> stopping -> exited
//	any      -> exited (the process died or was killed)
type State int

// Worker states.
const (
	Starting State = iota
	Idle
	Busy
	Stopping
	Exited
)

func (s State) String() string {
	return [...]string{"starting", "idle", "busy", "stopping", "exited"}[s]
}

// next reports whether a worker may go from one state to another; it keeps
// the state machine apart from process I/O so it can be tested on its own.
func next(from, to State) bool {
	switch to {
	case Exited:
		return from != Exited
	case Idle:
		return from == Starting || from == Busy
	case Busy:
		return from == Idle
	case Stopping:
		return from == Idle || from == Busy || from == Starting
	}
	return false
}

// worker is one live worker.php process and its two frame pipes.
type worker struct {
	cmd     *exec.Cmd
	pid     int
	gen     uint64
	started time.Time
	relay   *pipe.Relay // sends on fd 3 of the worker
	results *os.File    // reads fd 4 of the worker
	exited  chan struct{}
	log     *zap.Logger
	metrics *Metrics
	bt      *backtraces // picks backtraces out of stderr

	jobs   atomic.Int64
	memory atomic.Uint64

	mu      sync.Mutex
	state   State
	job     *Job
	since   time.Time
	lastErr string // the last line the worker wrote to stderr
	waitErr error
	reason  string // why the worker was retired, for the log and metrics
}

// spawnConfig is what starting a worker needs.
type spawnConfig struct {
	words        []string
	dir          string
	env          []string
	startTimeout time.Duration
	log          *zap.Logger
	metrics      *Metrics
}

// spawn starts a worker and waits for its handshake.
func spawn(c spawnConfig, gen uint64) (*worker, error) {
	jobR, jobW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("%w: pipe: %v", ErrStart, err)
	}
	resR, resW, err := os.Pipe()
	if err != nil {
		jobR.Close()
		jobW.Close()
		return nil, fmt.Errorf("%w: pipe: %v", ErrStart, err)
	}
	cmd := command(c.words, c.dir, c.env)
	cmd.ExtraFiles = []*os.File{jobR, resW} // fds 3 and 4 of the worker
	w := &worker{cmd: cmd, gen: gen, started: time.Now(), relay: pipe.NewPipeRelay(resR, jobW),
		results: resR, exited: make(chan struct{}), metrics: c.metrics, state: Starting}
	w.bt = newBacktraces(w.logBacktrace)
	stdout := newLineWriter(func(line string) {
		if strings.HasPrefix(line, "Could not open input file") { // PHP says so on stdout
			w.mu.Lock()
			w.lastErr = line
			w.mu.Unlock()
		}
		w.output("php stdout", line)
	})
	stderr := newLineWriter(func(line string) {
		if w.bt.line(line) {
			return
		}
		w.mu.Lock()
		w.lastErr = line
		w.mu.Unlock()
		w.output("php stderr", line)
	})
	cmd.Stdout, cmd.Stderr = stdout, stderr
	w.log = c.log
	err = cmd.Start()
	jobR.Close()
	resW.Close()
	if err != nil {
		jobW.Close()
		resR.Close()
		return nil, fmt.Errorf("%w: %v", ErrStart, err)
	}
	w.pid = cmd.Process.Pid
	// output() reads w.log from the goroutines copying stdout and stderr,
	// which run already.
	w.mu.Lock()
	w.log = c.log.With(zap.Int("pid", w.pid))
	w.mu.Unlock()
	go func() {
		err := cmd.Wait()
		stdout.Close()
		stderr.Close()
		w.bt.close()
		w.mu.Lock()
		w.waitErr = err
		w.mu.Unlock()
		w.setState(Exited)
		jobW.Close()
		resR.Close()
		close(w.exited)
	}()

	if err := w.handshake(c.startTimeout); err != nil {
		w.kill()
		<-w.exited
		w.mu.Lock()
		defer w.mu.Unlock()
		detail := w.lastErr
		if detail == "" && w.waitErr != nil {
			detail = w.waitErr.Error()
		}
		return nil, fmt.Errorf("%w: worker pid %d: %v (%s)", ErrStart, w.pid, err, detail)
	}
	return w, nil
}

// handshake waits for the worker's first CONTROL frame announcing its pid.
func (w *worker) handshake(timeout time.Duration) error {
	var hello struct {
		PID int `json:"pid"`
	}
	payload, err := w.readControl(timeout, &hello)
	if err != nil {
		return fmt.Errorf("no handshake: %w", err)
	}
	if hello.PID == 0 {
		return fmt.Errorf("bad handshake %q", payload)
	}
	return nil
}

// readControl reads the next frame within timeout, which must be a CONTROL
// frame holding JSON, into v; it returns the payload.
func (w *worker) readControl(timeout time.Duration, v any) ([]byte, error) {
	_ = w.results.SetReadDeadline(time.Now().Add(timeout))
	defer func() { _ = w.results.SetReadDeadline(time.Time{}) }()
	f, err := readFrame(w.results, 1<<16)
	if err != nil {
		return nil, err
	}
	if f.ReadFlags()&flagControl == 0 {
		return f.Payload(), fmt.Errorf("not a control frame: %q", f.Payload())
	}
	if err := json.Unmarshal(f.Payload(), v); err != nil {
		return f.Payload(), fmt.Errorf("bad control frame %q: %v", f.Payload(), err)
	}
	return f.Payload(), nil
}

// output logs a line the worker printed, tagged with the job it runs.
func (w *worker) output(msg, line string) {
	w.mu.Lock()
	job, log := w.job, w.log
	w.mu.Unlock()
	if job != nil {
		log = log.With(zap.String("session", job.Session), zap.Int64("task", job.Task), zap.String("class", job.Class))
	}
	log.Warn(msg, zap.String("line", line))
}

// logBacktrace logs a backtrace of the worker's PHP, tagged with the job
// it was asked for, or else with the job the worker runs.
func (w *worker) logBacktrace(req *btRequest, frames []string, note string) {
	w.mu.Lock()
	log, job, since := w.log, w.job, w.since
	w.mu.Unlock()
	why := whyAsked
	if req != nil {
		why, job, since = req.why, req.job, req.since
	} else if job == nil {
		since = time.Time{}
	}
	log.Log(backtraceLevel(req), why, backtraceFields(job, since, frames, note)...)
}

// setState moves the worker to a new state if the move is legal. The job a
// busy worker runs is recorded by assign.
func (w *worker) setState(to State) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	from := w.state
	if !next(from, to) {
		return false
	}
	w.state = to
	w.job = nil
	w.since = time.Now()
	switch from {
	case Idle:
		w.metrics.idle(-1)
	case Busy:
		w.metrics.busy(-1)
	}
	switch to {
	case Idle:
		w.metrics.idle(1)
	case Busy:
		w.metrics.busy(1)
	}
	return true
}

// assign records the job a busy worker runs.
func (w *worker) assign(job *Job) {
	w.mu.Lock()
	w.job = job
	w.since = time.Now()
	w.mu.Unlock()
}

// retire records why the worker leaves (first reason wins).
func (w *worker) retire(reason string) {
	w.mu.Lock()
	if w.reason == "" {
		w.reason = reason
	}
	w.mu.Unlock()
}

// kill SIGKILLs the worker's process group.
func (w *worker) kill() { killGroup(w.pid) }

// stop asks the worker to exit after its current frame, and kills it if it
// has not within grace.
func (w *worker) stop(grace time.Duration) {
	w.setState(Stopping)
	_ = w.relay.Send(controlFrame(map[string]bool{"stop": true}))
	go func() {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-w.exited:
		case <-t.C:
			w.kill()
		}
	}()
}

// idleNow reports whether the worker is idle (not dead, busy or stopping).
func (w *worker) idleNow() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.state == Idle
}

func (w *worker) dead() bool {
	select {
	case <-w.exited:
		return true
	default:
		return false
	}
}

// ping checks an idle worker answers within timeout and records its memory.
func (w *worker) ping(timeout time.Duration) error {
	if err := w.relay.Send(controlFrame(map[string]bool{"ping": true})); err != nil {
		return err
	}
	var pong struct {
		Pong   bool   `json:"pong"`
		Memory uint64 `json:"memory"`
	}
	payload, err := w.readControl(timeout, &pong)
	if err != nil {
		return err
	}
	if !pong.Pong {
		return fmt.Errorf("bad pong %q", payload)
	}
	w.memory.Store(pong.Memory)
	return nil
}

// info describes the worker for diagnostics.
func (w *worker) info() ProcInfo {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := ProcInfo{PID: w.pid, State: w.state.String(), Jobs: w.jobs.Load(), Memory: w.memory.Load(), Started: w.started}
	if w.job != nil {
		p.Session, p.Task, p.Class, p.Since = w.job.Session, w.job.Task, w.job.Class, w.since
	}
	return p
}

// jobFrame is the frame that carries a job to a worker.
func jobFrame(job *Job) *frame.Frame {
	return newFrame(flagRaw, job.Input, uint32(job.Kind))
}

package pool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/theaspect/aggregator"
	"github.com/theaspect/aggregator/pool/fsm"
	"go.uber.org/zap"
)

// Timing of a worker's conversation.
const (
	// cancelGrace is how long a cancelled job (its time ran out while it
	// waited in fetch()) may take to leave PHP before the worker counts as
	// not answering and is killed.
	cancelGrace = time.Second
	// stopGrace is how long a worker asked to stop may take to exit.
	stopGrace = 5 * time.Second
	// settleWait bounds the wait for a job's stderr lines to be read when
	// its result arrives.
	settleWait = 20 * time.Millisecond
	// maxJobLines bounds the stderr lines kept per job for its Result.
	maxJobLines = 200
	// maxStrayOutput is what worker.php keeps of a job's echo (Worker::MAX_JOB_OUTPUT).
	maxStrayOutput = 65536
)

// workerEnv is what the workers of one supervisor share.
type workerEnv struct {
	factory      WorkerFactory
	startTimeout time.Duration
	outputLimit  int
	slowlog      time.Duration
	maxJobs      int64
	maxMemory    uint64
	fetcher      aggregator.Fetcher
	log          *zap.Logger
	metrics      *Metrics
}

// worker is one warm worker.php process, made of a few owners:
//   - proc, its process (from the supervisor's WorkerFactory), and link
//     (link.go), the frames to and from it;
//   - life (pool/fsm), where it is in its life: every change goes through it;
//   - conv (conversation.go), what is in flight: jobs by id, pings, and
//     whose turn it is to read;
//   - the fetch() calls it performs for its jobs (fetchcall.go).
//
// This file starts it (spawn, handshake), steers its life (retire,
// askRecycle, keep, kill) and describes it; worker_job.go runs a job on
// it, worker_read.go reads its frames.
type worker struct {
	env     *workerEnv
	proc    Process
	settle  func(time.Duration) // waits until its stderr so far is read, when proc can tell (SettleStderr)
	pid     int
	gen     uint64
	started time.Time
	life    fsm.Machine
	link    *link
	conv    *conversation
	bt      *backtraces
	log     atomic.Pointer[zap.Logger] // with its pid once it has one
	gone    chan struct{}              // closed once the process exited and every job in flight has its answer
	freed   func(*worker)              // the supervisor's: one job slot of this worker is free again

	mu            sync.Mutex
	reason        Reason        // why it left (first reason wins)
	recycleReason Reason        // why it asked to be replaced
	recycle       chan struct{} // closed when it asks its slot to replace it
	lastErr       string        // the last line it wrote to stderr (or stdout)
}

// startFailure is why a worker did not start: crash says it was killed by a
// signal (someone else's doing, not a broken configuration).
type startFailure struct {
	err   error
	crash bool
}

// spawn starts a worker through the factory and waits for its handshake;
// ctx ending (the runner closing) kills a worker still shaking hands.
func spawn(ctx context.Context, env *workerEnv, gen uint64, freed func(*worker)) (*worker, *startFailure) {
	w := &worker{env: env, gen: gen, started: time.Now(), freed: freed, gone: make(chan struct{}),
		recycle: make(chan struct{}), settle: func(time.Duration) {}}
	w.log.Store(env.log)
	w.conv = newConversation(&w.life, w.slowlog)
	w.bt = newBacktraces(w.logBacktrace)
	wp, err := env.factory.StartWorker(newLineWriter(w.outputLine), newLineWriter(w.stderrLine))
	if err != nil {
		return nil, &startFailure{err: aggregator.Errorf(aggregator.EScriptStart, "%v", err)}
	}
	w.proc, w.pid, w.link = wp.Process, wp.PID(), newLink(wp, env.outputLimit)
	if s, ok := w.proc.(interface{ SettleStderr(time.Duration) }); ok {
		w.settle = s.SettleStderr
	}
	w.log.Store(env.log.With(zap.Int("pid", w.pid)))
	go w.watchExit()
	stopKill := context.AfterFunc(ctx, w.proc.Kill)
	err = w.handshake()
	stopKill()
	if err != nil {
		return nil, w.abandon(err)
	}
	// Refused when the process ended meanwhile: it takes no job then, and
	// leaves as a crash once readLoop has read its stream to the end.
	w.life.Fire(fsm.Handshake)
	go w.readLoop()
	return w, nil
}

// watchExit follows the process's end: its stream is read to the end at
// once. A child that left the process group may hold fd 4 open: then the
// stream never ends by itself, and is closed after drainWait.
func (w *worker) watchExit() {
	<-w.proc.Done()
	w.life.Fire(fsm.Exit) // refused when it was killed: it is Ending already
	w.conv.readToEnd()
	w.bt.close()
	t := time.NewTimer(drainWait)
	defer t.Stop()
	select {
	case <-w.gone:
	case <-t.C:
		w.link.closeRead()
	}
}

// abandon kills a worker whose handshake failed and says why.
func (w *worker) abandon(err error) *startFailure {
	w.life.Fire(fsm.Kill)
	w.proc.Kill()
	<-w.proc.Done()
	w.link.close()
	_, detail := w.leftBecause()
	if detail == "" {
		detail = w.proc.Exit().String()
	}
	return &startFailure{
		err:   aggregator.Errorf(aggregator.EScriptStart, "worker pid %d: %v (%s)", w.pid, err, detail),
		crash: errors.Is(err, errExitedEarly) && w.proc.Exit().Signal != 0,
	}
}

// errExitedEarly: the process ended before its handshake.
var errExitedEarly = errors.New("exited before its handshake")

// handshake waits for the worker's first CONTROL frame announcing its pid
// and protocol version.
func (w *worker) handshake() error {
	f, err := w.link.greeting(w.env.startTimeout)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("no handshake within %v (aggregator.pool.start-timeout)", w.env.startTimeout)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		<-w.proc.Done()
		return fmt.Errorf("%w: %v", errExitedEarly, w.proc.Exit())
	case err != nil:
		return fmt.Errorf("bad handshake: %v", err)
	case f.flags&flagControl == 0:
		return fmt.Errorf("bad handshake: not a control frame: %q", clip(f.payload))
	}
	var hello struct {
		PID      int `json:"pid"`
		Protocol int `json:"protocol"`
	}
	if json.Unmarshal(f.payload, &hello) != nil || hello.PID == 0 {
		return fmt.Errorf("bad handshake %q", clip(f.payload))
	}
	if hello.Protocol != protocolVersion {
		return fmt.Errorf("worker.php speaks protocol %d, this aggregator %d: use the worker.php of this release", hello.Protocol, protocolVersion)
	}
	return nil
}

// takesJobs reports whether the worker may be given a new job.
func (w *worker) takesJobs() bool { return w.life.State().TakesJobs() }

// setReason records why the worker leaves, unless a reason is known.
func (w *worker) setReason(r Reason) {
	w.mu.Lock()
	if w.reason == "" {
		w.reason = r
	}
	w.mu.Unlock()
}

// leftBecause is why the worker leaves (or left), and the last line PHP wrote.
func (w *worker) leftBecause() (Reason, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.reason, w.lastErr
}

// kill SIGKILLs the worker's process group; r is why, unless a reason is
// known. A worker already killed or ended is not signalled again.
func (w *worker) kill(r Reason) {
	w.setReason(r)
	if w.life.Fire(fsm.Kill) {
		w.proc.Kill()
	}
	w.conv.readToEnd()
}

// retire stops the worker gracefully: it takes no new jobs, the jobs in
// flight run to their end, then it is asked to exit (and killed if it has
// not within stopGrace).
func (w *worker) retire(r Reason) {
	w.setReason(r)
	if w.conv.retire() {
		w.sendStop()
	}
}

// sendStop asks the worker to exit and kills it if it has not within stopGrace.
func (w *worker) sendStop() {
	_ = w.link.send(controlFrame(map[string]bool{"stop": true}))
	go func() {
		t := time.NewTimer(stopGrace)
		defer t.Stop()
		select {
		case <-w.gone:
		case <-t.C:
			w.proc.Kill() // its Exit follows; why it left is known: why it was retired
		}
	}()
}

// askRecycle asks the worker's slot to replace it (once): the slot starts
// the replacement first, then retires this one. It takes no new jobs from
// now on, as max-jobs says; the jobs in flight go on.
func (w *worker) askRecycle(r Reason) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.recycleReason != "" || !w.life.Fire(fsm.Recycle) {
		return
	}
	w.recycleReason = r
	close(w.recycle)
}

// recycleAsked is closed once the worker asked to be replaced.
func (w *worker) recycleAsked() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.recycle
}

// recycleWhy is why the worker asked to be replaced.
func (w *worker) recycleWhy() Reason {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.recycleReason
}

// keep takes the worker back into service when its replacement could not
// start; rearm lets it ask again after its next job. Either way its slot
// gets a fresh channel to watch: the closed one would have it try again at
// once, starting PHP in a loop while the code on disk does not start.
func (w *worker) keep(rearm bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if rearm {
		w.recycleReason = ""
	}
	w.recycle = make(chan struct{})
	w.life.Fire(fsm.Keep) // refused when it was killed meanwhile
}

// ping checks the worker answers within timeout and records its memory.
func (w *worker) ping(timeout time.Duration) error {
	select { // a stale pong
	case <-w.conv.pongs:
	default:
	}
	w.conv.pingSent()
	defer w.conv.pingDone()
	if err := w.link.send(controlFrame(map[string]bool{"ping": true})); err != nil {
		return err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case p := <-w.conv.pongs:
		var pong struct {
			Pong   bool   `json:"pong"`
			Memory uint64 `json:"memory"`
		}
		if json.Unmarshal(p, &pong) != nil || !pong.Pong {
			return fmt.Errorf("bad pong %q", clip(p))
		}
		w.conv.setMemory(pong.Memory)
		if w.env.maxMemory > 0 && pong.Memory > w.env.maxMemory {
			w.askRecycle(ReasonMaxMemory)
		}
		return nil
	case <-w.gone:
		return errors.New("it exited")
	case <-t.C:
		return fmt.Errorf("no pong within %v", timeout)
	}
}

// idle reports whether the worker is in service with no job in flight.
func (w *worker) idle() bool {
	s := w.life.State()
	return (s == fsm.Ready || s == fsm.Recycling) && w.conv.load() == 0
}

// load is the number of jobs in PHP.
func (w *worker) load() int { return w.conv.load() }

// info describes the worker for /workers: idle or busy while it takes
// jobs, stopping from when it takes none until it has exited.
func (w *worker) info() aggregator.ProcInfo {
	p := aggregator.ProcInfo{PID: w.pid, Started: w.started}
	var inPHP int
	p.Running, inPHP, p.Jobs, p.Memory = w.conv.snapshot()
	switch s := w.life.State(); {
	case s == fsm.Ready && inPHP > 0:
		p.State = procBusy
	case s == fsm.Ready:
		p.State = procIdle
	case s == fsm.Starting:
		p.State = procStarting
	case s == fsm.Exited:
		p.State = procExited
	default:
		p.State = procStopping
	}
	return p
}

// What /workers says a PHP process is doing (aggregator.ProcInfo.State).
const (
	procStarting = "starting" // a worker shaking hands
	procIdle     = "idle"     // a worker that takes jobs and has none
	procBusy     = "busy"     // a worker with jobs in flight; an exec process
	procStopping = "stopping" // a worker that takes no new jobs: being replaced, retired or killed
	procExited   = "exited"   // a worker whose process is gone
)

// slowlog starts the slowlog timer of a job (conversation.begin's hook).
func (w *worker) slowlog(job *aggregator.Job, id uint32, start time.Time) func() {
	return w.bt.slowlog(w.proc, w.env.slowlog, job, id, start)
}

// logger is the worker's logger (with its pid once it has one).
func (w *worker) logger() *zap.Logger { return w.log.Load() }

// stderrLine logs a line PHP wrote to stderr, tagged with the job that
// wrote it when it can be told (one job in flight).
func (w *worker) stderrLine(line string) {
	if w.bt.line(line) {
		return
	}
	w.lastLine(line)
	job, n := w.conv.stderrLine(line)
	log := w.logger()
	switch {
	case job != nil:
		log = log.With(jobFields(job)...)
	case n > 1:
		log = log.With(zap.Int("jobs_in_flight", n))
	}
	log.Warn("php stderr", zap.String("line", line))
}

// outputLine logs a line PHP wrote to stdout outside any job (worker.php
// sends a job's own output with its result); PHP itself says there that
// it cannot open worker.php.
func (w *worker) outputLine(line string) {
	w.lastLine(line)
	w.logger().Warn("php stdout", zap.String("line", line))
}

func (w *worker) lastLine(line string) {
	w.mu.Lock()
	w.lastErr = line
	w.mu.Unlock()
}

// logBacktrace logs a backtrace of the worker's PHP, tagged with the job it
// was asked for, or else with the job its section is about.
func (w *worker) logBacktrace(req *btRequest, id uint32, frames []string, note string) {
	job, since := w.conv.jobOf(id)
	why := whyAsked
	if req != nil {
		why, job, since = req.why, req.job, req.since
	}
	w.logger().Log(backtraceLevel(req), why, backtraceFields(job, since, frames, note)...)
}

// jobFields name a job in a log line.
func jobFields(job *aggregator.Job, more ...zap.Field) []zap.Field {
	return append([]zap.Field{zap.String("session", job.Session), zap.Int64("task", job.Task),
		zap.String("class", job.Class)}, more...)
}

// clip shortens PHP's bytes for an error message.
func clip(b []byte) []byte {
	const max = 200
	if len(b) > max {
		return append(b[:max:max], "..."...)
	}
	return b
}

package pool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roadrunner-server/goridge/v3/pkg/frame"
	"go.uber.org/zap"
)

// Timing of the supervisor.
const (
	// backoffMin and backoffMax bound the wait between failed worker starts,
	// so a broken worker file costs a log line per attempt, not a CPU.
	backoffMin = 100 * time.Millisecond
	backoffMax = 10 * time.Second
	// stopGrace is how long a worker asked to stop may take before it is killed.
	stopGrace = 5 * time.Second
	// pingTimeout is how long an idle worker may take to answer a health check.
	pingTimeout = 2 * time.Second
)

// WorkerConfig configures the supervisor of warm PHP workers.
type WorkerConfig struct {
	Command      []string      // command words; the handlers file is appended
	Handlers     string        // the PHP handlers file
	Dir          string        // working directory
	Env          []string      // environment
	Workers      int           // how many workers to keep
	MaxJobs      int64         // jobs before a worker is replaced; 0 = no limit
	MaxMemory    uint64        // bytes a worker may hold after a job; 0 = no limit
	OutputLimit  int           // bytes of one job's answer; 0 = no limit
	StartTimeout time.Duration // how long a worker may take to shake hands
	IdleCheck    time.Duration // how often idle workers are pinged; 0 = never
	Slowlog      time.Duration // a job running this long has its backtrace logged; 0 = never
	Log          *zap.Logger
	Metrics      *Metrics
}

// Supervisor keeps cfg.Workers warm worker.php processes and hands each job
// to an idle one as a goridge frame. A worker whose job overruns its time is
// killed; a worker that dies is replaced; failing starts back off.
type Supervisor struct {
	cfg    WorkerConfig
	spawn  spawnConfig
	idle   chan *worker // workers ready for a job
	gen    atomic.Uint64
	ctx    context.Context // done on Close
	cancel context.CancelFunc
	slots  sync.WaitGroup
	runs   gate

	mu       sync.Mutex
	workers  map[*worker]struct{} // live workers, for Info and Health
	startErr error                // the last failed start, nil after a good one
	changed  chan struct{}        // closed and replaced when startErr is set
}

// NewSupervisor starts the workers and returns at once; jobs wait for the
// first worker to be ready.
func NewSupervisor(cfg WorkerConfig) *Supervisor {
	if cfg.Workers < 1 {
		cfg.Workers = 1
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 10 * time.Second
	}
	words := append(append([]string{}, cfg.Command...), cfg.Handlers)
	env := append(append([]string{}, cfg.Env...), "AGGREGATOR_HANDLERS="+cfg.Handlers)
	ctx, cancel := context.WithCancel(context.Background())
	s := &Supervisor{
		cfg:     cfg,
		spawn:   spawnConfig{words: words, dir: cfg.Dir, env: env, startTimeout: cfg.StartTimeout, log: cfg.Log, metrics: cfg.Metrics},
		idle:    make(chan *worker, cfg.Workers),
		ctx:     ctx,
		cancel:  cancel,
		workers: make(map[*worker]struct{}),
		changed: make(chan struct{}),
	}
	for i := 0; i < cfg.Workers; i++ {
		s.slots.Add(1)
		go s.slot()
	}
	if cfg.IdleCheck > 0 {
		s.slots.Add(1)
		go s.healthLoop()
	}
	return s
}

// slot keeps one worker alive: start it (backing off while starts fail),
// offer it for jobs, wait for it to exit, start the next.
func (s *Supervisor) slot() {
	defer s.slots.Done()
	backoff := time.Duration(0)
	for s.ctx.Err() == nil {
		w, err := spawn(s.spawn, s.gen.Load())
		s.cfg.Metrics.workerStarted(err == nil)
		if err != nil {
			backoff = min(max(2*backoff, backoffMin), backoffMax)
			s.failedStart(err)
			s.cfg.Log.Error("worker start failed", zap.Error(err), zap.Duration("retry_in", backoff))
			select {
			case <-time.After(backoff):
				continue
			case <-s.ctx.Done():
				return
			}
		}
		backoff = 0
		s.started(w)
		w.log.Debug("worker ready")
		w.setState(Idle)
		s.offer(w)
		select {
		case <-w.exited:
		case <-s.ctx.Done():
			w.kill()
			<-w.exited
		}
		s.exited(w)
	}
}

func (s *Supervisor) started(w *worker) {
	s.mu.Lock()
	s.workers[w] = struct{}{}
	s.startErr = nil
	s.mu.Unlock()
}

func (s *Supervisor) failedStart(err error) {
	s.mu.Lock()
	s.startErr = err
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *Supervisor) exited(w *worker) {
	s.mu.Lock()
	delete(s.workers, w)
	s.mu.Unlock()
	w.mu.Lock()
	reason, waitErr := w.reason, w.waitErr
	w.mu.Unlock()
	if reason == "" {
		reason = "crash"
	}
	if s.ctx.Err() != nil {
		return
	}
	s.cfg.Metrics.workerReplaced(reason)
	lvl := zap.InfoLevel
	if reason == "crash" || reason == "protocol" {
		lvl = zap.WarnLevel
	}
	w.log.Log(lvl, "worker exited, replacing it", zap.String("reason", reason),
		zap.Int64("jobs", w.jobs.Load()), zap.NamedError("exit", waitErr))
}

// Run sends the job to an idle worker and waits for its answer. When ctx ends
// first, the worker is killed (and replaced) and Run returns ErrKilled.
func (s *Supervisor) Run(ctx context.Context, job *Job) (Result, error) {
	if !s.runs.enter() {
		return Result{}, ErrClosed
	}
	defer s.runs.leave()
	if s.ctx.Err() != nil {
		return Result{}, ErrClosed
	}
	for {
		w, err := s.acquire(ctx)
		if err != nil {
			return Result{}, err
		}
		res, err, retry := s.exec(ctx, w, job)
		if !retry {
			return res, err
		}
	}
}

// acquire waits for an idle worker. It fails fast with ErrStart while no
// worker is alive and the last start failed.
func (s *Supervisor) acquire(ctx context.Context) (*worker, error) {
	for {
		// Fast path, without s.mu: a worker is idle.
		select {
		case w := <-s.idle:
			if w.setState(Busy) {
				return w, nil
			}
			continue // it died or was stopped while idle
		default:
		}
		s.mu.Lock()
		live, startErr, changed := len(s.workers), s.startErr, s.changed
		s.mu.Unlock()
		if live == 0 && startErr != nil {
			return nil, startErr
		}
		select {
		case w := <-s.idle:
			if w.setState(Busy) {
				return w, nil
			}
		case <-changed:
		case <-ctx.Done():
			return nil, ErrNotStarted
		case <-s.ctx.Done():
			return nil, ErrClosed
		}
	}
}

// exec runs one job on w. retry is true when the job never reached the
// worker (it had died idle), so another worker may take it.
func (s *Supervisor) exec(ctx context.Context, w *worker, job *Job) (res Result, err error, retry bool) {
	if ctx.Err() != nil { // its time ran out while it waited for this worker
		s.release(w)
		return res, ErrNotStarted, false
	}
	w.assign(job)
	// A backtrace asked for near the end of the last job and not yet come
	// is no longer this worker's job's.
	w.bt.forget(nil)
	start := time.Now()
	res.PID = w.pid
	// When ctx ends the worker is killed; when that is because the job's
	// time ran out, its backtrace is logged first (waiting at most
	// BacktraceWait for it). firedAt is read after killDone.
	var firedAt time.Time
	killDone := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(killDone)
		firedAt = time.Now()
		w.retire("timeout")
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			w.bt.take(w.cmd.Process, whyTimeout, job, start, w.exited, BacktraceWait)
		}
		w.kill()
	})
	defer stop()
	// Over before the worker can be released to another job (below), and
	// on every early return.
	over := w.bt.slowlog(w.cmd.Process, s.cfg.Slowlog, job, start)
	defer over()
	if err := w.relay.Send(jobFrame(job)); err != nil {
		w.retire("crash")
		w.kill()
		if ctx.Err() != nil {
			return res, ErrNotStarted, false
		}
		return res, nil, true
	}
	w.log.Debug("job started", zap.String("session", job.Session), zap.Int64("task", job.Task),
		zap.String("kind", job.Kind.String()), zap.String("class", job.Class))
	f, err := readFrame(w.results, s.cfg.OutputLimit)
	readAt := time.Now()
	over()
	res.Duration = readAt.Sub(start)
	if !stop() {
		// ctx ended: the worker is being killed. An answer read before
		// then is whole and counts, though the worker is gone; one that
		// came while its backtrace was awaited is late.
		<-killDone
		if err != nil || !readAt.Before(firedAt) {
			return res, ErrKilled, false
		}
		res, err, _ = s.answer(w, job, f, res)
		return res, err, false
	}
	if err != nil {
		switch {
		case errors.Is(err, errFrameTooLarge):
			w.retire("output_limit")
			w.kill()
			return res, fmt.Errorf("%w: worker pid %d: %v", ErrOutputLimit, w.pid, err), false
		case s.ctx.Err() != nil:
			return res, ErrClosed, false
		}
		w.retire("crash")
		w.kill()
		<-w.exited
		w.mu.Lock()
		detail := w.lastErr
		w.mu.Unlock()
		return res, fmt.Errorf("%w: worker pid %d died mid-job: %v (%s)", ErrFailed, w.pid, err, detail), false
	}
	res, err, reuse := s.answer(w, job, f, res)
	if reuse {
		s.release(w)
	}
	return res, err, false
}

// answer reads a job's result frame; reuse is false when the worker must
// not get another job (it is being killed).
func (s *Supervisor) answer(w *worker, job *Job, f *frame.Frame, res Result) (_ Result, err error, reuse bool) {
	flags := f.ReadFlags()
	if opts := f.ReadOptions(f.Header()); len(opts) > 0 {
		w.memory.Store(uint64(opts[0]))
	}
	w.jobs.Add(1)
	res.Output = f.Payload()
	switch {
	case flags&flagControl != 0:
		w.retire("protocol")
		w.kill()
		return res, fmt.Errorf("%w: worker pid %d answered a job with a control frame", ErrFailed, w.pid), false
	case flags&flagError != 0:
		var fatal bool
		err, fatal = s.handlerError(w, job, f.Payload())
		if fatal {
			// PHP is going down after a fatal error (memory_limit, …): it
			// must not get another job in the moment before it exits.
			w.retire("fatal")
			w.kill()
			return res, err, false
		}
	}
	return res, err, true
}

// handlerError logs a handler's exception with its trace and makes the
// error; fatal says the worker reported a fatal PHP error and is exiting.
func (s *Supervisor) handlerError(w *worker, job *Job, payload []byte) (err error, fatal bool) {
	var e struct {
		Error string `json:"error"`
		Class string `json:"class"`
		File  string `json:"file"`
		Line  int    `json:"line"`
		Trace string `json:"trace"`
	}
	if json.Unmarshal(payload, &e) != nil {
		e.Error = string(payload)
	}
	w.log.Error("handler failed", zap.String("session", job.Session), zap.Int64("task", job.Task),
		zap.String("kind", job.Kind.String()), zap.String("class", job.Class),
		zap.String("error", e.Error), zap.String("exception", e.Class), zap.String("file", e.File),
		zap.Int("line", e.Line), zap.String("trace", e.Trace))
	return fmt.Errorf("%w: %s: %s", ErrFailed, e.Class, e.Error), e.Class == "FatalError"
}

// release returns w to the idle workers, or retires it when it has done
// its jobs, holds too much memory, or belongs to an older generation.
func (s *Supervisor) release(w *worker) {
	reason := ""
	switch {
	case w.dead():
		return
	case s.cfg.MaxJobs > 0 && w.jobs.Load() >= s.cfg.MaxJobs:
		reason = "max_jobs"
	case s.cfg.MaxMemory > 0 && w.memory.Load() > s.cfg.MaxMemory:
		reason = "max_memory"
	case w.gen != s.gen.Load():
		reason = "reload"
	}
	if reason != "" {
		w.retire(reason)
		w.stop(stopGrace)
		return
	}
	if w.setState(Idle) {
		s.offer(w)
	}
}

// offer puts an idle worker on the idle channel without blocking. The channel
// holds at most one live worker per slot, but also the workers that died while
// idle until someone takes them out; when it is full, offer drops those to make
// room. (A blocking send there would wedge a slot, a finished Run, or Close.)
func (s *Supervisor) offer(w *worker) {
	pending := []*worker{w}
	for len(pending) > 0 {
		select {
		case s.idle <- pending[0]:
			pending = pending[1:]
			continue
		default:
		}
		select {
		case x := <-s.idle:
			if x.idleNow() && !x.dead() {
				// Live: keep it. A full channel of live ones means one has
				// died but is not marked yet; let its reaper run.
				pending = append(pending, x)
				runtime.Gosched()
			}
		default:
		}
	}
}

// Reload retires every worker gracefully: idle ones now, busy ones after
// their current job. New workers start with the code on disk; no job is lost.
func (s *Supervisor) Reload() {
	gen := s.gen.Add(1)
	s.cfg.Log.Info("reloading workers", zap.Uint64("generation", gen))
	s.drainIdle(func(w *worker) bool {
		if w.gen == gen {
			return true
		}
		w.retire("reload")
		w.stop(stopGrace)
		return false
	})
}

// drainIdle takes each idle worker once and puts it back if keep says so.
func (s *Supervisor) drainIdle(keep func(*worker) bool) {
	for n := len(s.idle); n > 0; n-- {
		select {
		case w := <-s.idle:
			if w.dead() {
				continue
			}
			if keep(w) {
				s.offer(w)
			}
		default:
			return
		}
	}
}

// healthLoop pings idle workers now and then and replaces those that do not
// answer or hold more memory than allowed.
func (s *Supervisor) healthLoop() {
	defer s.slots.Done()
	t := time.NewTicker(s.cfg.IdleCheck)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		s.drainIdle(func(w *worker) bool {
			if !w.setState(Busy) {
				return false
			}
			if err := w.ping(pingTimeout); err != nil {
				w.log.Warn("idle worker failed its health check", zap.Error(err))
				w.retire("health")
				w.kill()
				return false
			}
			// Back to idle, or retired for its memory (as the ping just
			// measured it) or for a reload that began during the ping.
			s.release(w)
			return false
		})
	}
}

// Health is nil while at least one worker is alive.
func (s *Supervisor) Health() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.workers) > 0 {
		return nil
	}
	if s.startErr != nil {
		return s.startErr
	}
	return errors.New("no PHP worker is running yet")
}

// Info lists the live workers.
func (s *Supervisor) Info() []ProcInfo {
	s.mu.Lock()
	ws := make([]*worker, 0, len(s.workers))
	for w := range s.workers {
		ws = append(ws, w)
	}
	s.mu.Unlock()
	out := make([]ProcInfo, 0, len(ws))
	for _, w := range ws {
		out = append(out, w.info())
	}
	return out
}

// Close kills every worker and waits until all have exited.
func (s *Supervisor) Close() error {
	s.cancel()
	s.slots.Wait()
	s.runs.closeAndWait()
	return nil
}

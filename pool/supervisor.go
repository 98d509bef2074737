package pool

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/theaspect/aggregator"
	"go.uber.org/zap"
)

// Timing of the supervisor.
const (
	// pingTimeout is how long an idle worker may take to answer a health check.
	pingTimeout = 2 * time.Second
	// reloadSpacing is the least time between two reloads: reloads asked
	// for meanwhile (an editor's saves, SIGHUP in a loop) become one.
	reloadSpacing = time.Second
)

// WorkerConfig configures the supervisor of warm PHP workers. A field
// tagged with a key is that configuration key (cmd/aggregator decodes the
// tags; doc is its row in docs/configuration.md); the others are filled
// by whoever starts the supervisor.
type WorkerConfig struct {
	Command []string `key:"aggregator.worker.command" as:"command" when:"aggregator.pool.mode=worker" default:"php -d display_errors=stderr -d memory_limit=64M worker.php" doc:"worker command, split into words without a shell (the handlers file is appended)"`
	// Handlers is the PHP handlers file.
	Handlers string `key:"aggregator.worker.handlers" when:"aggregator.pool.mode=worker" default:"script/handlers.php" doc:"the PHP file returning the handlers"`
	// HTTPWrapper: PHP's http(s):// streams of a job go through Fetcher (env AGGREGATOR_HTTP_WRAPPER).
	HTTPWrapper bool     `key:"aggregator.worker.http-wrapper" when:"aggregator.pool.mode=worker" default:"true" doc:"worker mode: 'http://' and 'https://' streams of a job ('file_get_contents', 'fopen', SoapClient's WSDL) go through the aggregator like 'fetch()' ([porting.md](porting.md)); 'false' leaves them to PHP's own wrapper, which holds the worker while it waits"`
	Dir         string   // working directory
	Env         []string // environment
	// Workers is how many workers to keep.
	Workers int `key:"aggregator.pool.executor" min:"1" default:"20" doc:"PHP processes at once (workers, or exec processes)"`
	// Concurrency is how many jobs one worker runs at once.
	Concurrency int `key:"aggregator.pool.concurrency" min:"1" default:"1" doc:"worker mode: jobs one worker runs at once; raise it for handlers that call suppliers through 'fetch()' ([translators.md](translators.md#calling-suppliers-fetch))"`
	// MaxJobs is how many jobs a worker runs before it is replaced; 0 = no limit.
	MaxJobs int64 `key:"aggregator.pool.max-jobs" as:"int-or-auto" min:"0" default:"auto" doc:"jobs before a worker is replaced ('0' = never); 'auto' = 10000 × 'aggregator.pool.concurrency', so that a worker running many jobs at once is not replaced every few seconds"`
	// MaxMemory is the bytes a worker may hold after a job; 0 = no limit.
	MaxMemory uint64 `key:"aggregator.pool.max-memory" as:"megabytes" min:"0" default:"128" doc:"MB a worker may hold after a job before it is replaced ('0' = no limit)"`
	// OutputLimit is the bytes of one job's answer; 0 = no limit.
	OutputLimit int `key:"aggregator.limit.output-size" min:"2" default:"16777216" doc:"bytes of one PHP answer (or one 'fetch()' body); past it the process is killed, 'E_SCRIPT_ERROR'"`
	// StartTimeout is how long a worker may take to shake hands.
	StartTimeout time.Duration `key:"aggregator.pool.start-timeout" default:"10" doc:"seconds a new worker has to shake hands"`
	// IdleCheck is how often idle workers are pinged; 0 = never.
	IdleCheck time.Duration `key:"aggregator.pool.idle-check" as:"seconds-or-off" default:"10" doc:"seconds between health pings of idle workers ('0' = never)"`
	// Slowlog: a job running this long has its backtrace logged; 0 = never.
	Slowlog time.Duration `key:"aggregator.pool.slowlog" as:"seconds-or-off" default:"0" doc:"seconds after which a running job's PHP backtrace is logged ('slow job'); the job goes on; '0' = off"`
	Fetcher aggregator.Fetcher
	// Factory starts the workers; nil: PipeWorkers, Command and the
	// Handlers file in Dir with Env (and AGGREGATOR_HANDLERS,
	// AGGREGATOR_HTTP_WRAPPER) over pipes.
	Factory WorkerFactory
	Log     *zap.Logger
	Metrics *Metrics
}

// Supervisor keeps cfg.Workers warm worker.php processes and gives each job
// to the least busy one that has room (at most cfg.Concurrency jobs each).
// Each slot keeps one worker alive: it starts it, replaces it when it dies
// or asks to be recycled, and on a reload starts the new one first, so that
// code that cannot start leaves the old workers serving (SPEC §16).
type Supervisor struct {
	cfg    WorkerConfig
	env    *workerEnv
	ctx    context.Context // done on Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // slots, reapers, the health loop
	runs   gate

	mu       sync.Mutex
	workers  map[*worker]int // every live worker (ready, or draining after a reload) and its reserved job slots
	waiting  int             // Run calls waiting for room
	changed  chan struct{}   // closed and replaced when room may have appeared or startErr changed
	startErr error           // the last failed start while no worker was live; nil after a good one
	gen      uint64          // the code generation wanted
	genCh    chan struct{}   // closed and replaced when gen changes
	// reloadErr is why the last reload could not start the new code; the
	// old workers serve meanwhile. failedGen is its generation.
	reloadErr   error
	failedGen   uint64
	lastReload  time.Time
	reloadTimer *time.Timer
}

// NewSupervisor starts the workers and returns at once; jobs wait for the
// first worker to be ready.
func NewSupervisor(cfg WorkerConfig) *Supervisor {
	if cfg.Workers < 1 {
		cfg.Workers = 1
	}
	if cfg.Concurrency < 1 {
		cfg.Concurrency = 1
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 10 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	if cfg.Factory == nil {
		cfg.Factory = PipeWorkers{Words: append(append([]string{}, cfg.Command...), cfg.Handlers), Dir: cfg.Dir,
			Env: append(append([]string{}, cfg.Env...), "AGGREGATOR_HANDLERS="+cfg.Handlers,
				"AGGREGATOR_HTTP_WRAPPER="+strconv.FormatBool(cfg.HTTPWrapper))}
	}
	s := &Supervisor{
		cfg: cfg,
		env: &workerEnv{
			factory:      cfg.Factory,
			startTimeout: cfg.StartTimeout,
			outputLimit:  cfg.OutputLimit,
			slowlog:      cfg.Slowlog,
			maxJobs:      cfg.MaxJobs,
			maxMemory:    cfg.MaxMemory,
			fetcher:      cfg.Fetcher,
			log:          cfg.Log,
			metrics:      cfg.Metrics,
		},
		ctx:     ctx,
		cancel:  cancel,
		workers: map[*worker]int{},
		changed: make(chan struct{}),
		genCh:   make(chan struct{}),
	}
	cfg.Metrics.observe(s.gauges)
	for i := 0; i < cfg.Workers; i++ {
		s.wg.Add(1)
		go s.slot()
	}
	if cfg.IdleCheck > 0 {
		s.wg.Add(1)
		go s.healthLoop()
	}
	return s
}

// Run gives the job to the least busy worker with room and waits for its
// answer. A job whose worker died for another job's sake runs again on
// another worker if its time allows.
func (s *Supervisor) Run(ctx context.Context, job *aggregator.Job) (aggregator.Result, error) {
	if !s.runs.enter() {
		return aggregator.Result{}, errClosed()
	}
	defer s.runs.leave()
	for {
		w, err := s.acquire(ctx)
		if err != nil {
			return aggregator.Result{}, err
		}
		res, err, retry := w.exec(ctx, job)
		if !retry || ctx.Err() != nil || s.ctx.Err() != nil {
			return res, err
		}
	}
}

// acquire reserves a job slot on the least busy worker that has room. It
// fails at once with E_SCRIPT_START while no worker is live and the last
// start failed for a reason of the configuration.
func (s *Supervisor) acquire(ctx context.Context) (*worker, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if ctx.Err() != nil {
			return nil, errCancelled()
		}
		if s.ctx.Err() != nil {
			return nil, errClosed()
		}
		var best *worker
		for w, n := range s.workers {
			if n < s.cfg.Concurrency && w.takesJobs() && (best == nil || n < s.workers[best]) {
				best = w
			}
		}
		if best != nil {
			s.workers[best]++
			return best, nil
		}
		if len(s.workers) == 0 && s.startErr != nil {
			return nil, s.startErr
		}
		changed := s.changed
		s.waiting++
		s.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
		case <-s.ctx.Done():
		}
		s.mu.Lock()
		s.waiting--
	}
}

// freed returns a job slot of w (a worker calls it once per job it took).
func (s *Supervisor) freed(w *worker) {
	s.mu.Lock()
	if n, ok := s.workers[w]; ok && n > 0 {
		s.workers[w] = n - 1
	}
	if s.waiting > 0 {
		s.broadcastLocked()
	}
	s.mu.Unlock()
}

func (s *Supervisor) broadcastLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// generationChanged reports whether a reload came since gen.
func (s *Supervisor) generationChanged(gen uint64) bool {
	g, _ := s.generation()
	return g != gen
}

// generation is the code generation wanted and the channel closed when it changes.
func (s *Supervisor) generation() (uint64, chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen, s.genCh
}

// Reload starts workers with the code on disk and retires the old ones
// once each replacement is up; no job is lost. When the new code cannot
// start, the old workers keep serving and Health says why. Reloads closer
// than reloadSpacing are merged: the last one always happens.
func (s *Supervisor) Reload() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reloadTimer != nil {
		return // one is due, and will see the code as it is then
	}
	if wait := reloadSpacing - time.Since(s.lastReload); wait > 0 {
		s.reloadTimer = time.AfterFunc(wait, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.reloadTimer = nil
			s.reloadLocked()
		})
		return
	}
	s.reloadLocked()
}

func (s *Supervisor) reloadLocked() {
	if s.ctx.Err() != nil {
		return
	}
	s.lastReload = time.Now()
	s.gen++
	close(s.genCh)
	s.genCh = make(chan struct{})
	s.cfg.Log.Info("reloading workers: new ones first", zap.Uint64("generation", s.gen))
}

// reloadFailed records (and logs once per generation) a reload whose new
// code does not start.
func (s *Supervisor) reloadFailed(gen uint64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failedGen == gen && s.reloadErr != nil {
		return
	}
	s.failedGen, s.reloadErr = gen, err
	s.cfg.Log.Error("reload failed, still serving the previous code", zap.Uint64("generation", gen),
		zap.Error(err), zap.Int("workers", len(s.workers)))
}

// healthLoop pings idle workers now and then and kills those that do not answer.
func (s *Supervisor) healthLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.IdleCheck)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		var idle []*worker
		for w, n := range s.workers {
			if n == 0 {
				idle = append(idle, w)
			}
		}
		s.mu.Unlock()
		for _, w := range idle {
			if !w.idle() {
				continue
			}
			if err := w.ping(pingTimeout); err != nil && w.takesJobs() {
				w.logger().Warn("idle worker failed its health check", zap.Error(err))
				w.kill(ReasonHealth)
			}
		}
	}
}

// Health is ok while workers serve the current code, degraded while they
// serve the previous code because a reload failed, down while none is live.
func (s *Supervisor) Health() aggregator.Health {
	s.mu.Lock()
	defer s.mu.Unlock()
	live := 0
	for w := range s.workers {
		if w.takesJobs() {
			live++
		}
	}
	switch {
	case live > 0 && s.reloadErr != nil:
		return aggregator.Health{Status: aggregator.HealthDegraded,
			Reason: "reload failed, still serving the previous code: " + aggregator.ErrorMessage(s.reloadErr)}
	case live > 0:
		return aggregator.Health{Status: aggregator.HealthOK}
	case s.startErr != nil:
		return aggregator.Health{Status: aggregator.HealthDown, Reason: aggregator.ErrorMessage(s.startErr)}
	}
	return aggregator.Health{Status: aggregator.HealthDown, Reason: "no PHP worker is running yet"}
}

// Info lists the live workers.
func (s *Supervisor) Info() []aggregator.ProcInfo {
	s.mu.Lock()
	ws := make([]*worker, 0, len(s.workers))
	for w := range s.workers {
		ws = append(ws, w)
	}
	s.mu.Unlock()
	out := make([]aggregator.ProcInfo, 0, len(ws))
	for _, w := range ws {
		out = append(out, w.info())
	}
	return out
}

// gauges counts workers busy and idle, and jobs in flight, for /metrics.
func (s *Supervisor) gauges() (busy, idle, jobs int) {
	s.mu.Lock()
	ws := make([]*worker, 0, len(s.workers))
	for w := range s.workers {
		ws = append(ws, w)
	}
	s.mu.Unlock()
	for _, w := range ws {
		n := w.load()
		jobs += n
		if n > 0 {
			busy++
		} else if w.takesJobs() {
			idle++
		}
	}
	return busy, idle, jobs
}

// Close kills every worker and waits until all have exited.
func (s *Supervisor) Close() error {
	s.mu.Lock()
	s.cancel()
	if s.reloadTimer != nil {
		s.reloadTimer.Stop()
		s.reloadTimer = nil
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.runs.closeAndWait()
	return nil
}

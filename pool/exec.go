package pool

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/theaspect/aggregator"
	"go.uber.org/zap"
)

// ExecConfig configures the exec runner (the legacy mode: a process per
// call). Tagged fields are configuration keys, as in WorkerConfig; the
// keys both modes read have their doc there.
type ExecConfig struct {
	// Suppliers and Items are the command words of each kind of job.
	Suppliers []string `key:"aggregator.script.suppliers" as:"command" when:"aggregator.pool.mode=exec" default:"php -d display_errors=stderr script/suppliers.php" doc:"exec mode suppliers command, split into words without a shell"`
	Items     []string `key:"aggregator.script.items" as:"command" when:"aggregator.pool.mode=exec" default:"php -d display_errors=stderr script/items.php" doc:"exec mode items command"`
	Dir       string   // working directory of the scripts
	Env       []string // environment of the scripts
	// Processes is how many run at once at most.
	Processes int `key:"aggregator.pool.executor" min:"1"`
	// OutputLimit is the bytes of stdout per job; 0 = unlimited.
	OutputLimit int `key:"aggregator.limit.output-size" min:"2"`
	// Prepend is the PHP file (absolute) loaded first with -d auto_prepend_file; "" = none.
	Prepend string `key:"aggregator.script.prepend" when:"aggregator.pool.mode=exec" default:"src/prepend.php" doc:"exec mode: loaded with '-d auto_prepend_file', so scripts get 'fetch()', the autoloader, backtraces on SIGUSR1 and exceptions reported as data; empty = none"`
	// Slowlog: a job running this long has its backtrace logged; 0 = never.
	Slowlog time.Duration `key:"aggregator.pool.slowlog" as:"seconds-or-off"`
	// Factory starts each call's process; nil: ForkExec, a new process per call.
	Factory CallFactory
	Log     *zap.Logger
	Metrics *Metrics
}

// reportFD is the exec script's fd of the report pipe (src/Report.php):
// the prepend file and the exec adapter write a handler's exception there
// as JSON, so it reaches the log as data, not as lines of PHP's text.
const reportFD = 3

// Exec runs each job as its own process: the job's JSON on stdin (then
// closed), the answer read whole from stdout. Scripts of the first
// implementation of the service run unmodified.
type Exec struct {
	cfg     ExecConfig
	factory CallFactory
	argv    map[aggregator.Kind][]string // the commands as run: with the prepend file
	script  map[aggregator.Kind]string   // the commands as configured, for log lines
	slots   chan struct{}
	ctx     context.Context // done when the runner closes
	cancel  context.CancelFunc
	runs    gate

	mu      sync.Mutex
	running map[int]*aggregator.ProcInfo
}

// NewExec returns an exec runner.
func NewExec(cfg ExecConfig) *Exec {
	if cfg.Processes < 1 {
		cfg.Processes = 1
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.Factory == nil {
		cfg.Factory = ForkExec{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Exec{
		cfg:     cfg,
		factory: cfg.Factory,
		argv: map[aggregator.Kind][]string{aggregator.Suppliers: withPrepend(cfg.Suppliers, cfg.Prepend),
			aggregator.Items: withPrepend(cfg.Items, cfg.Prepend)},
		script: map[aggregator.Kind]string{aggregator.Suppliers: strings.Join(cfg.Suppliers, " "),
			aggregator.Items: strings.Join(cfg.Items, " ")},
		slots:   make(chan struct{}, cfg.Processes),
		ctx:     ctx,
		cancel:  cancel,
		running: make(map[int]*aggregator.ProcInfo),
	}
	cfg.Metrics.observe(e.gauges)
	return e
}

// withPrepend adds "-d auto_prepend_file=FILE" after the program when it is
// PHP (php, php8.2, ...) and file is set. src/prepend.php gives scripts
// fetch(), backtraces on SIGUSR1 and exceptions reported as data, unmodified.
// A later auto_prepend_file of the command itself wins.
func withPrepend(words []string, file string) []string {
	if file == "" || len(words) == 0 || !strings.HasPrefix(filepath.Base(words[0]), "php") {
		return words
	}
	out := make([]string, 0, len(words)+2)
	out = append(out, words[0], "-d", "auto_prepend_file="+file)
	return append(out, words[1:]...)
}

// Run starts the job's command once a slot is free and waits for it.
func (e *Exec) Run(ctx context.Context, job *aggregator.Job) (aggregator.Result, error) {
	if !e.runs.enter() {
		return aggregator.Result{}, errClosed()
	}
	defer e.runs.leave()
	if e.ctx.Err() != nil {
		return aggregator.Result{}, errClosed()
	}
	select {
	case e.slots <- struct{}{}:
	case <-ctx.Done():
		return aggregator.Result{}, errCancelled()
	case <-e.ctx.Done():
		return aggregator.Result{}, errClosed()
	}
	defer func() { <-e.slots }()
	if ctx.Err() != nil {
		return aggregator.Result{}, errCancelled()
	}
	return e.run(ctx, job)
}

// run runs one call: its process from the factory, then its result.
func (e *Exec) run(ctx context.Context, job *aggregator.Job) (aggregator.Result, error) {
	c := newExecCall(e, ctx, job)
	if err := c.begin(); err != nil {
		return aggregator.Result{}, err
	}
	e.track(c.pid, job, c.start)
	defer e.untrack(c.pid)
	return c.outcome(c.wait())
}

func (e *Exec) track(pid int, job *aggregator.Job, start time.Time) {
	e.mu.Lock()
	e.running[pid] = &aggregator.ProcInfo{PID: pid, State: procBusy, Jobs: 0, Started: start,
		Running: []aggregator.JobInfo{{Session: job.Session, Task: job.Task, Kind: job.Kind.String(),
			Class: job.Class, Since: start}}}
	e.mu.Unlock()
}

func (e *Exec) untrack(pid int) {
	e.mu.Lock()
	delete(e.running, pid)
	e.mu.Unlock()
}

// gauges counts the running processes for /metrics: each is busy with one job.
func (e *Exec) gauges() (busy, idle, jobs int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.running), 0, len(e.running)
}

// Health reports whether both commands can be found.
func (e *Exec) Health() aggregator.Health {
	for _, w := range [][]string{e.cfg.Suppliers, e.cfg.Items} {
		if _, err := exec.LookPath(w[0]); err != nil {
			return aggregator.Health{Status: aggregator.HealthDown, Reason: fmt.Sprintf("exec command %q: %v", w[0], err)}
		}
	}
	return aggregator.Health{Status: aggregator.HealthOK}
}

// Info lists the running processes.
func (e *Exec) Info() []aggregator.ProcInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]aggregator.ProcInfo, 0, len(e.running))
	for _, p := range e.running {
		out = append(out, *p)
	}
	return out
}

// Close kills every running process and waits for them, then closes the
// factory if it keeps processes of its own.
func (e *Exec) Close() error {
	e.cancel()
	e.runs.closeAndWait()
	if c, ok := e.factory.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

package pool

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
	cfg    ExecConfig
	argv   map[aggregator.Kind][]string // the commands as run: with the prepend file
	script map[aggregator.Kind]string   // the commands as configured, for log lines
	slots  chan struct{}
	ctx    context.Context // done when the runner closes
	cancel context.CancelFunc
	runs   gate

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
	ctx, cancel := context.WithCancel(context.Background())
	e := &Exec{
		cfg: cfg,
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

func (e *Exec) run(ctx context.Context, job *aggregator.Job) (aggregator.Result, error) {
	script := zap.String("script", e.script[job.Kind])
	log := e.cfg.Log.With(jobFields(job, script)...)
	repR, repW, err := os.Pipe()
	if err != nil {
		return aggregator.Result{}, aggregator.Errorf(aggregator.EScriptStart, "pipe: %v", err)
	}
	var (
		p      *process
		mu     sync.Mutex // guards stderr and p for the copiers
		stderr []string
		report bytes.Buffer
	)
	stdout := &limitBuffer{limit: e.cfg.OutputLimit, over: func() {
		mu.Lock()
		defer mu.Unlock()
		if p != nil {
			p.kill()
		}
	}}
	var bt *backtraces
	bt = newBacktraces(func(req *btRequest, _ uint32, frames []string, note string) {
		why, since := whyAsked, time.Time{}
		if req != nil {
			why, since = req.why, req.since
		}
		mu.Lock()
		pid := p.pid
		mu.Unlock()
		fields := append([]zap.Field{zap.Int("pid", pid)}, backtraceFields(job, since, frames, note)...)
		e.cfg.Log.Log(backtraceLevel(req), why, append(fields, script)...)
	})
	errLines := newLineWriter(func(line string) {
		if bt.line(line) {
			return
		}
		mu.Lock()
		if len(stderr) < maxJobLines {
			stderr = append(stderr, line)
		}
		pid := p.pid
		mu.Unlock()
		log.Warn("php stderr", zap.Int("pid", pid), zap.String("line", line))
	})
	env := append(append([]string{}, e.cfg.Env...), "AGGREGATOR_REPORT_FD="+strconv.Itoa(reportFD),
		"AGGREGATOR_OUTPUT_LIMIT="+strconv.Itoa(e.cfg.OutputLimit))
	if d, ok := ctx.Deadline(); ok {
		env = append(env, fmt.Sprintf("AGGREGATOR_DEADLINE=%.3f", float64(d.UnixMicro())/1e6))
	}
	start := time.Now()
	mu.Lock() // the copiers wait for p
	p, err = startProcess(procSpec{words: e.argv[job.Kind], dir: e.cfg.Dir, env: env,
		stdin: append(job.Input[:len(job.Input):len(job.Input)], '\n'),
		extra: []*os.File{repW}, stdout: stdout, stderr: errLines})
	if err != nil {
		p = &process{}
		mu.Unlock()
		repR.Close()
		e.cfg.Metrics.execStarted(job.Kind, false)
		return aggregator.Result{}, aggregator.Errorf(aggregator.EScriptStart, "%s", describeStart(e.argv[job.Kind], err))
	}
	mu.Unlock()
	e.cfg.Metrics.execStarted(job.Kind, true)
	reportRead := make(chan struct{})
	go func() {
		defer close(reportRead)
		_, _ = io.Copy(&report, io.LimitReader(repR, 1<<20))
		repR.Close()
	}()
	if stdout.exceeded.Load() { // the limit was hit before p was set
		p.kill()
	}
	log.Debug("job started", zap.Int("pid", p.pid), zap.String("kind", job.Kind.String()))
	e.track(p.pid, job, start)
	defer e.untrack(p.pid)

	// When ctx ends the process group is killed (after its backtrace when
	// its time ran out), and so it is when the runner closes.
	killDone := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(killDone)
		overrun(p, bt, job, 0, start, ctx.Err() == context.DeadlineExceeded)
	})
	stopClose := context.AfterFunc(e.ctx, p.kill)
	slowEnd := bt.slowlog(p, e.cfg.Slowlog, job, 0, start)
	<-p.exited
	slowEnd()
	killed := !stop() // ctx ended first: the AfterFunc above ran
	if killed {
		<-killDone
	}
	stopClose()
	bt.close()
	select {
	case <-reportRead:
	case <-time.After(drainWait): // a child outside the group holds the report pipe
		repR.Close()
		<-reportRead
	}
	mu.Lock()
	res := aggregator.Result{Output: stdout.Bytes(), PID: p.pid, Duration: time.Since(start), Stderr: stderr}
	mu.Unlock()
	var failure *phpFailure
	if report.Len() > 0 {
		var r struct {
			Exception *phpFailure `json:"exception"`
		}
		if json.Unmarshal(report.Bytes(), &r) == nil {
			failure = r.Exception
		}
	}
	switch {
	case killed:
		if ctx.Err() == context.DeadlineExceeded {
			return res, aggregator.Errorf(aggregator.EScriptTimeout, "its time ran out while running PHP code (pid %d killed)", p.pid)
		}
		return res, aggregator.Errorf(aggregator.EScriptTimeout, "cancelled (its session ended): pid %d killed", p.pid)
	case stdout.exceeded.Load():
		return res, &aggregator.Error{Code: aggregator.EScriptError, Limit: "output_size", Message: fmt.Sprintf(
			"its answer is over aggregator.limit.output-size (%d bytes): pid %d killed", e.cfg.OutputLimit, p.pid)}
	case e.ctx.Err() != nil:
		return res, errClosed()
	case failure != nil:
		res.Output = nil
		var err error
		res.Exception, err = handlerFailed(log.With(zap.Int("pid", p.pid)), job, *failure)
		return res, err
	case p.err != nil:
		if _, ok := p.err.(*exec.ExitError); ok {
			// PHP CLI says so (on stdout) when the script file is missing.
			for _, msg := range append([]string{strings.TrimSpace(string(res.Output))}, res.Stderr...) {
				if strings.HasPrefix(msg, "Could not open input file") {
					return res, aggregator.Errorf(aggregator.EScriptStart, "%s", msg)
				}
			}
		}
		detail := p.exitDetail()
		if n := len(res.Stderr); n > 0 {
			detail += ": " + res.Stderr[n-1]
		}
		return res, aggregator.Errorf(aggregator.EScriptError, "PHP failed: %s", detail)
	case len(res.Output) == 0:
		// As a worker whose handler calls exit(): no answer at all.
		return res, aggregator.Errorf(aggregator.EScriptError, "the script exited 0 without printing an answer")
	}
	return res, nil
}

func (e *Exec) track(pid int, job *aggregator.Job, start time.Time) {
	e.mu.Lock()
	e.running[pid] = &aggregator.ProcInfo{PID: pid, State: "busy", Jobs: 0, Started: start,
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

// Reload does nothing: every exec job starts a fresh process with the code on disk.
func (e *Exec) Reload() {}

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

// Close kills every running process and waits for them.
func (e *Exec) Close() error {
	e.cancel()
	e.runs.closeAndWait()
	return nil
}

package pool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// ExecConfig configures the exec runner (the legacy mode: a process per call).
type ExecConfig struct {
	Suppliers   []string      // command words for suppliers jobs
	Items       []string      // command words for items jobs
	Dir         string        // working directory of the scripts
	Env         []string      // environment of the scripts
	Processes   int           // at most this many at once
	OutputLimit int           // bytes of stdout per job; 0 = unlimited
	Prepend     string        // PHP file (absolute) loaded first with -d auto_prepend_file; "" = none
	Slowlog     time.Duration // a job running this long has its backtrace logged; 0 = never
	Log         *zap.Logger
	Metrics     *Metrics
}

// Exec runs each job as its own process: the job's JSON on stdin (then
// closed), the answer read whole from stdout. Scripts of the first
// implementation of the service run unmodified.
type Exec struct {
	cfg    ExecConfig
	argv   map[Kind][]string // the commands as run: with the prepend file
	script map[Kind]string   // the commands as configured, for log lines
	slots  chan struct{}
	ctx    context.Context // done when the runner closes
	cancel context.CancelFunc
	runs   gate

	mu      sync.Mutex
	running map[int]*ProcInfo
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
	return &Exec{
		cfg:     cfg,
		argv:    map[Kind][]string{Suppliers: withPrepend(cfg.Suppliers, cfg.Prepend), Items: withPrepend(cfg.Items, cfg.Prepend)},
		script:  map[Kind]string{Suppliers: strings.Join(cfg.Suppliers, " "), Items: strings.Join(cfg.Items, " ")},
		slots:   make(chan struct{}, cfg.Processes),
		ctx:     ctx,
		cancel:  cancel,
		running: make(map[int]*ProcInfo),
	}
}

// withPrepend adds "-d auto_prepend_file=FILE" after the program when it is
// PHP (php, php8.2, ...) and file is set. src/backtrace_prepend.php makes
// the scripts answer SIGUSR1 with their backtrace, unmodified. A later
// auto_prepend_file of the command itself wins.
func withPrepend(words []string, file string) []string {
	if file == "" || len(words) == 0 || !strings.HasPrefix(filepath.Base(words[0]), "php") {
		return words
	}
	out := make([]string, 0, len(words)+2)
	out = append(out, words[0], "-d", "auto_prepend_file="+file)
	return append(out, words[1:]...)
}

// Run starts the job's command once a slot is free and waits for it.
func (e *Exec) Run(ctx context.Context, job *Job) (Result, error) {
	if !e.runs.enter() {
		return Result{}, ErrClosed
	}
	defer e.runs.leave()
	if e.ctx.Err() != nil {
		return Result{}, ErrClosed
	}
	select {
	case e.slots <- struct{}{}:
	case <-ctx.Done():
		return Result{}, ErrNotStarted
	case <-e.ctx.Done():
		return Result{}, ErrClosed
	}
	defer func() { <-e.slots }()
	if ctx.Err() != nil {
		return Result{}, ErrNotStarted
	}
	return e.run(ctx, job)
}

func (e *Exec) run(ctx context.Context, job *Job) (Result, error) {
	script := zap.String("script", e.script[job.Kind])
	log := e.cfg.Log.With(zap.String("session", job.Session), zap.Int64("task", job.Task), script)
	cmd := command(e.argv[job.Kind], e.cfg.Dir, e.cfg.Env)
	cmd.Stdin = bytes.NewReader(append(job.Input[:len(job.Input):len(job.Input)], '\n'))

	var pid atomic.Int64
	stdout := &limitBuffer{limit: e.cfg.OutputLimit, over: func() { killGroup(int(pid.Load())) }}
	cmd.Stdout = stdout
	bt := newBacktraces(func(req *btRequest, frames []string, note string) {
		why, since := whyAsked, time.Time{}
		if req != nil {
			why, since = req.why, req.since
		}
		fields := append([]zap.Field{zap.Int64("pid", pid.Load())}, backtraceFields(job, since, frames, note)...)
		fields = append(fields, script)
		e.cfg.Log.Log(backtraceLevel(req), why, fields...)
	})
	var firstErr string // a PHP error or exception message, not the trace after it
	stderr := newLineWriter(func(line string) {
		if bt.line(line) {
			return
		}
		if firstErr == "" || strings.HasPrefix(line, "Could not open input file") {
			firstErr = line
		}
		log.Warn("php stderr", zap.Int64("pid", pid.Load()), zap.String("line", line))
	})
	cmd.Stderr = stderr

	start := time.Now()
	if err := cmd.Start(); err != nil {
		e.cfg.Metrics.execStarted(job.Kind, false)
		return Result{}, fmt.Errorf("%w: %v", ErrStart, err)
	}
	e.cfg.Metrics.execStarted(job.Kind, true)
	pid.Store(int64(cmd.Process.Pid))
	if stdout.exceeded.Load() { // the limit was hit before pid was known
		killGroup(cmd.Process.Pid)
	}
	log.Debug("job started", zap.Int("pid", cmd.Process.Pid), zap.String("kind", job.Kind.String()),
		zap.String("class", job.Class))
	e.track(cmd.Process.Pid, job, start)
	defer e.untrack(cmd.Process.Pid)

	// When ctx ends the process group is killed; when that is because the
	// job's time ran out, its backtrace is logged first (waiting at most
	// BacktraceWait for it).
	exited := make(chan struct{})
	killDone := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(killDone)
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			bt.take(cmd.Process, whyTimeout, job, start, exited, BacktraceWait)
		}
		killGroup(cmd.Process.Pid)
	})
	stopClose := context.AfterFunc(e.ctx, func() { killGroup(cmd.Process.Pid) })
	over := bt.slowlog(cmd.Process, e.cfg.Slowlog, job, start)
	err := cmd.Wait()
	over()
	close(exited)
	killed := !stop() // ctx ended first: the AfterFunc above ran
	if killed {
		<-killDone
	}
	stopClose()
	// Kill what the script may have left behind in its group.
	killGroup(cmd.Process.Pid)
	_ = stderr.Close()
	bt.close()
	res := Result{Output: stdout.Bytes(), PID: cmd.Process.Pid, Duration: time.Since(start)}

	switch {
	case killed:
		return res, ErrKilled
	case stdout.exceeded.Load():
		return res, fmt.Errorf("%w (%d bytes)", ErrOutputLimit, e.cfg.OutputLimit)
	case e.ctx.Err() != nil:
		return res, ErrClosed
	case err != nil:
		var exitErr *exec.ExitError
		// PHP CLI prints "Could not open input file: x.php" on stdout, not stderr.
		if errors.As(err, &exitErr) {
			for _, msg := range []string{firstErr, strings.TrimSpace(string(res.Output))} {
				if strings.HasPrefix(msg, "Could not open input file") {
					return res, fmt.Errorf("%w: %s", ErrStart, msg)
				}
			}
		}
		if firstErr != "" {
			return res, fmt.Errorf("%w: %v: %s", ErrFailed, err, firstErr)
		}
		return res, fmt.Errorf("%w: %v", ErrFailed, err)
	}
	return res, nil
}

func (e *Exec) track(pid int, job *Job, start time.Time) {
	e.mu.Lock()
	e.running[pid] = &ProcInfo{PID: pid, State: "busy", Jobs: 1, Started: start,
		Session: job.Session, Task: job.Task, Class: job.Class, Since: start}
	e.mu.Unlock()
}

func (e *Exec) untrack(pid int) {
	e.mu.Lock()
	delete(e.running, pid)
	e.mu.Unlock()
}

// Reload does nothing: every exec job starts a fresh process with the code on disk.
func (e *Exec) Reload() {}

// Health reports whether both commands can be found.
func (e *Exec) Health() error {
	for _, w := range [][]string{e.cfg.Suppliers, e.cfg.Items} {
		if _, err := exec.LookPath(w[0]); err != nil {
			return fmt.Errorf("exec command %q: %w", w[0], err)
		}
	}
	return nil
}

// Info lists the running processes.
func (e *Exec) Info() []ProcInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]ProcInfo, 0, len(e.running))
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

package pool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// ExecConfig configures the exec runner (the legacy mode: a process per call).
type ExecConfig struct {
	Suppliers   []string // command words for suppliers jobs
	Items       []string // command words for items jobs
	Dir         string   // working directory of the scripts
	Env         []string // environment of the scripts
	Processes   int      // at most this many at once
	OutputLimit int      // bytes of stdout per job; 0 = unlimited
	Log         *zap.Logger
	Metrics     *Metrics
}

// Exec runs each job as its own process: the job's JSON on stdin (then
// closed), the answer read whole from stdout. Scripts of the first
// implementation of the service run unmodified.
type Exec struct {
	cfg    ExecConfig
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
		slots:   make(chan struct{}, cfg.Processes),
		ctx:     ctx,
		cancel:  cancel,
		running: make(map[int]*ProcInfo),
	}
}

func (e *Exec) words(k Kind) []string {
	if k == Suppliers {
		return e.cfg.Suppliers
	}
	return e.cfg.Items
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
	words := e.words(job.Kind)
	log := e.cfg.Log.With(zap.String("session", job.Session), zap.Int64("task", job.Task),
		zap.String("script", strings.Join(words, " ")))
	cmd := command(words, e.cfg.Dir, e.cfg.Env)
	cmd.Stdin = bytes.NewReader(append(job.Input[:len(job.Input):len(job.Input)], '\n'))

	var pid atomic.Int64
	var killed, tooLong atomic.Bool
	stdout := &limitBuffer{limit: e.cfg.OutputLimit, over: func() {
		tooLong.Store(true)
		killGroup(int(pid.Load()))
	}}
	cmd.Stdout = stdout
	var firstErr string // a PHP error or exception message, not the trace after it
	stderr := newLineWriter(func(line string) {
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
	e.track(cmd.Process.Pid, job, start)
	defer e.untrack(cmd.Process.Pid)

	stop := context.AfterFunc(ctx, func() {
		killed.Store(true)
		killGroup(cmd.Process.Pid)
	})
	stopClose := context.AfterFunc(e.ctx, func() { killGroup(cmd.Process.Pid) })
	err := cmd.Wait()
	stop()
	stopClose()
	// Kill what the script may have left behind in its group.
	killGroup(cmd.Process.Pid)
	_ = stderr.Close()
	res := Result{Output: stdout.Bytes(), PID: cmd.Process.Pid, Duration: time.Since(start)}

	switch {
	case killed.Load():
		return res, ErrKilled
	case tooLong.Load():
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

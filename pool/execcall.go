package pool

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/theaspect/aggregator"
	"go.uber.org/zap"
)

// maxReport bounds what is read of a call's report pipe.
const maxReport = 1 << 20

// execCall is one exec job, from the start of its process to its result:
// the process (started by the runner's CallFactory), its stdout bounded by
// the output limit, its stderr lines, its report pipe and its backtraces.
// Exec.run drives it: begin, wait, outcome.
type execCall struct {
	e      *Exec
	ctx    context.Context
	job    *aggregator.Job
	log    *zap.Logger
	script zap.Field // the command as configured, on every line
	start  time.Time
	stdout *limitBuffer
	bt     *backtraces

	report     bytes.Buffer // what src/Report.php wrote on fd 3; read once reportRead is closed
	reportR    *os.File
	reportRead chan struct{}

	mu     sync.Mutex // held while the process starts: the copiers wait for p and pid
	p      Process
	pid    int
	stderr []string // its lines for the Result
}

func newExecCall(e *Exec, ctx context.Context, job *aggregator.Job) *execCall {
	c := &execCall{e: e, ctx: ctx, job: job, script: zap.String("script", e.script[job.Kind])}
	c.log = e.cfg.Log.With(jobFields(job, c.script)...)
	c.stdout = &limitBuffer{limit: e.cfg.OutputLimit, over: func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.p != nil {
			c.p.Kill()
		}
	}}
	c.bt = newBacktraces(c.logBacktrace)
	return c
}

// begin starts the call's process through the factory, its job on stdin
// and the report pipe as its fd 3.
func (c *execCall) begin() error {
	e, argv := c.e, c.e.argv[c.job.Kind]
	repR, repW, err := os.Pipe()
	if err != nil {
		return aggregator.Errorf(aggregator.EScriptStart, "pipe: %v", err)
	}
	c.start = time.Now()
	c.mu.Lock() // the copiers wait for p
	c.p, err = e.factory.StartCall(&CallSpec{Words: argv, Dir: e.cfg.Dir, Env: c.env(),
		Stdin:  append(c.job.Input[:len(c.job.Input):len(c.job.Input)], '\n'),
		Report: repW, Stdout: c.stdout, Stderr: newLineWriter(c.stderrLine)})
	if err != nil {
		c.p = nil
		c.mu.Unlock()
		repR.Close()
		e.cfg.Metrics.execStarted(c.job.Kind, false)
		return aggregator.Errorf(aggregator.EScriptStart, "%v", err)
	}
	c.pid = c.p.PID()
	c.mu.Unlock()
	e.cfg.Metrics.execStarted(c.job.Kind, true)
	c.reportR, c.reportRead = repR, make(chan struct{})
	go func() {
		defer close(c.reportRead)
		_, _ = io.Copy(&c.report, io.LimitReader(repR, maxReport))
		repR.Close()
	}()
	if c.stdout.exceeded.Load() { // the limit was hit before p was set
		c.p.Kill()
	}
	c.log.Debug("job started", zap.Int("pid", c.pid), zap.String("kind", c.job.Kind.String()))
	return nil
}

// env is the call's environment: the configured one, and what the exec
// adapter reads (src/ExecScript.php).
func (c *execCall) env() []string {
	env := append(append([]string{}, c.e.cfg.Env...), "AGGREGATOR_REPORT_FD="+strconv.Itoa(reportFD),
		"AGGREGATOR_OUTPUT_LIMIT="+strconv.Itoa(c.e.cfg.OutputLimit))
	if d, ok := c.ctx.Deadline(); ok {
		env = append(env, fmt.Sprintf("AGGREGATOR_DEADLINE=%.3f", float64(d.UnixMicro())/1e6))
	}
	return env
}

// wait waits for the process to end. When ctx ends first its process
// group is killed (after its backtrace when its time ran out): killed says
// so. It is killed too when the runner closes.
func (c *execCall) wait() (killed bool) {
	killDone := make(chan struct{})
	stop := context.AfterFunc(c.ctx, func() {
		defer close(killDone)
		overrun(c.p, c.bt, c.job, 0, c.start, c.ctx.Err() == context.DeadlineExceeded)
	})
	stopClose := context.AfterFunc(c.e.ctx, c.p.Kill)
	slowEnd := c.bt.slowlog(c.p, c.e.cfg.Slowlog, c.job, 0, c.start)
	<-c.p.Done()
	slowEnd()
	killed = !stop() // ctx ended first: the AfterFunc above ran
	if killed {
		<-killDone
	}
	stopClose()
	c.bt.close()
	select {
	case <-c.reportRead:
	case <-time.After(drainWait): // a child outside the group holds the report pipe
		c.reportR.Close()
		<-c.reportRead
	}
	return killed
}

// outcome is the call's result, and its error by the first that holds:
// killed for its time, over the output limit, the runner closing, the
// handler's exception reported, a failed exit, no answer at all.
func (c *execCall) outcome(killed bool) (aggregator.Result, error) {
	c.mu.Lock()
	res := aggregator.Result{Output: c.stdout.Bytes(), PID: c.pid, Duration: time.Since(c.start), Stderr: c.stderr}
	c.mu.Unlock()
	exit := c.p.Exit()
	failure := c.reported()
	switch {
	case killed:
		if c.ctx.Err() == context.DeadlineExceeded {
			return res, aggregator.Errorf(aggregator.EScriptTimeout, "its time ran out while running PHP code (pid %d killed)", c.pid)
		}
		return res, aggregator.Errorf(aggregator.EScriptTimeout, "cancelled (its session ended): pid %d killed", c.pid)
	case c.stdout.exceeded.Load():
		return res, &aggregator.Error{Code: aggregator.EScriptError, Limit: "output_size", Message: fmt.Sprintf(
			"its answer is over aggregator.limit.output-size (%d bytes): pid %d killed", c.e.cfg.OutputLimit, c.pid)}
	case c.e.ctx.Err() != nil:
		return res, errClosed()
	case failure != nil:
		res.Output = nil
		var err error
		res.Exception, err = handlerFailed(c.log.With(zap.Int("pid", c.pid)), c.job, *failure)
		return res, err
	case exit.Failed():
		return res, exitFailed(res, exit)
	case len(res.Output) == 0:
		// As a worker whose handler calls exit(): no answer at all.
		return res, aggregator.Errorf(aggregator.EScriptError, "the script exited 0 without printing an answer")
	}
	return res, nil
}

// exitFailed is the error of a call that exited non-zero: E_SCRIPT_START
// when PHP could not open the script, else E_SCRIPT_ERROR with its last
// stderr line.
func exitFailed(res aggregator.Result, exit Exit) error {
	if exit.Err == nil {
		// PHP CLI says so (on stdout) when the script file is missing.
		for _, msg := range append([]string{strings.TrimSpace(string(res.Output))}, res.Stderr...) {
			if strings.HasPrefix(msg, "Could not open input file") {
				return aggregator.Errorf(aggregator.EScriptStart, "%s", msg)
			}
		}
	}
	detail := exit.String()
	if n := len(res.Stderr); n > 0 {
		detail += ": " + res.Stderr[n-1]
	}
	return aggregator.Errorf(aggregator.EScriptError, "PHP failed: %s", detail)
}

// reported is the handler's exception the call wrote on its report pipe, if any.
func (c *execCall) reported() *phpFailure {
	if c.report.Len() == 0 {
		return nil
	}
	var r struct {
		Exception *phpFailure `json:"exception"`
	}
	if json.Unmarshal(c.report.Bytes(), &r) != nil {
		return nil
	}
	return r.Exception
}

// stderrLine takes a line of the call's stderr: a backtrace's, or one for
// the log and the Result.
func (c *execCall) stderrLine(line string) {
	if c.bt.line(line) {
		return
	}
	c.mu.Lock()
	if len(c.stderr) < maxJobLines {
		c.stderr = append(c.stderr, line)
	}
	pid := c.pid
	c.mu.Unlock()
	c.log.Warn("php stderr", zap.Int("pid", pid), zap.String("line", line))
}

// logBacktrace logs a backtrace of the call's PHP.
func (c *execCall) logBacktrace(req *btRequest, _ uint32, frames []string, note string) {
	why, since := whyAsked, time.Time{}
	if req != nil {
		why, since = req.why, req.since
	}
	c.mu.Lock()
	pid := c.pid
	c.mu.Unlock()
	fields := append([]zap.Field{zap.Int("pid", pid)}, backtraceFields(c.job, since, frames, note)...)
	c.e.cfg.Log.Log(backtraceLevel(req), why, append(fields, c.script)...)
}

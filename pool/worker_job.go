package pool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/theaspect/aggregator"
	"go.uber.org/zap"
)

// Running one job on a worker: send it, wait for its result (reading it
// itself when the job is alone on the worker), end it when its time runs
// out, and answer the jobs still in flight when the worker dies.

// exec runs job on the worker, in a job slot the supervisor reserved for
// it (the worker frees it once the job has left PHP). When ctx ends first
// the job ends E_SCRIPT_TIMEOUT at once and is cancelled in PHP (timeUp).
// retry says the job did not run through no fault of its own; err is then
// what to report if no other worker can take it in time.
func (w *worker) exec(ctx context.Context, job *aggregator.Job) (aggregator.Result, error, bool) {
	j, reads, ok := w.conv.begin(ctx, job)
	if !ok {
		w.freed(w)
		return aggregator.Result{}, errCancelled(), true
	}
	if err := w.link.sendJob(j.id, job); err != nil {
		if reads {
			w.conv.releaseReader()
		}
		w.kill(ReasonCrash)
		// The reader answers j when it sees the process end; the job never
		// reached PHP, so another worker may take it.
		a := <-j.answer
		return a.res, a.err, true
	}
	if ce := w.logger().Check(zap.DebugLevel, "job started"); ce != nil {
		ce.Write(jobFields(job, zap.Uint32("job", j.id))...)
	}
	if reads {
		if a, ok := w.readOwn(ctx, j); ok {
			return a.res, a.err, a.retry
		}
	}
	select {
	case a := <-j.answer:
		return a.res, a.err, a.retry
	case <-ctx.Done():
	}
	return w.timeUp(j, ctx)
}

// timeUp ends a job whose time ran out (or whose browser left): the caller
// gets E_SCRIPT_TIMEOUT now. A job running PHP code past its time is stuck:
// its backtrace is logged and the worker killed (its other jobs run again
// elsewhere). A job waiting in fetch() is cancelled inside PHP, which runs
// its finally blocks and goes on with its other jobs; if it does not leave
// within cancelGrace, PHP is not answering and the worker is killed.
func (w *worker) timeUp(j *inflight, ctx context.Context) (aggregator.Result, error, bool) {
	stderr, doing, stuck, ok := w.conv.timeUp(j)
	if !ok { // its answer came as the time ran out: it counts
		a := <-j.answer
		return a.res, a.err, a.retry
	}
	res := aggregator.Result{PID: w.pid, Duration: time.Since(j.start), Stderr: stderr}
	j.slowEnd()
	deadline := errors.Is(ctx.Err(), context.DeadlineExceeded)
	if stuck {
		w.setReason(ReasonTimeout)
		overrun(w.proc, w.bt, j.job, j.id, j.start, deadline)
	} else {
		_ = w.link.send(controlFrame(map[string]uint32{"cancel": j.id}))
		time.AfterFunc(cancelGrace, func() {
			if w.conv.holds(j) {
				w.logger().Warn("a cancelled job did not leave PHP: killing the worker",
					jobFields(j.job, zap.Duration("grace", cancelGrace))...)
				w.setReason(ReasonTimeout)
				overrun(w.proc, w.bt, j.job, j.id, j.start, true)
			}
		})
	}
	if !deadline {
		return res, aggregator.Errorf(aggregator.EScriptTimeout, "cancelled (its session ended) while %s", doing), false
	}
	return res, aggregator.Errorf(aggregator.EScriptTimeout, "its time ran out while %s", doing), false
}

// phpFailure is the ERROR payload of a result (src/Report.php).
type phpFailure struct {
	Error  string `json:"error"`
	Class  string `json:"class"`
	File   string `json:"file"`
	Line   int    `json:"line"`
	Trace  string `json:"trace"`
	Public bool   `json:"public"`
	Fatal  bool   `json:"fatal"` // the process is ending (a fatal error, exit())
	Hint   string `json:"hint"`
}

// result handles a job's result frame: [typeJob, id, memory, stray bytes].
func (w *worker) result(o []uint32, flags byte, payload []byte) error {
	if len(o) < 4 || int(o[3]) > len(payload) {
		return fmt.Errorf("a malformed result frame: options %v, %d bytes", o, len(payload))
	}
	w.settle(settleWait) // its warnings, written before this frame, are its own
	j, stderr, jobsDone, stop := w.conv.finish(o[1], uint64(o[2]))
	if j == nil {
		w.logger().Warn("a result for no job in flight: ignored", zap.Uint32("job", o[1]))
		return nil
	}
	w.freed(w)
	j.slowEnd()
	cut := len(payload) - int(o[3])
	res, err, fatal := w.answerOf(j, stderr, flags, payload[:cut], payload[cut:])
	// The worker closes to new jobs before the answer goes out: the caller's
	// next job must not land on a worker that has had its max-jobs.
	switch {
	case fatal: // PHP is on its way out
		w.kill(ReasonFatal)
	case w.env.maxJobs > 0 && jobsDone >= w.env.maxJobs:
		w.askRecycle(ReasonMaxJobs)
	case w.env.maxMemory > 0 && uint64(o[2]) > w.env.maxMemory:
		w.askRecycle(ReasonMaxMemory)
	}
	if j.over {
		if ce := w.logger().Check(zap.DebugLevel, "a cancelled job left PHP"); ce != nil {
			ce.Write(jobFields(j.job, zap.Duration("after", time.Since(j.start)))...)
		}
	} else {
		j.answer <- answer{res: res, err: err}
	}
	if stop {
		w.sendStop()
	}
	return nil
}

// answerOf is what a result frame says of job j: out is its answer (or,
// flagged ERROR, PHP's failure as JSON), stray what it echoed; fatal says
// PHP is on its way out.
func (w *worker) answerOf(j *inflight, stderr []string, flags byte, out, stray []byte) (aggregator.Result, error, bool) {
	// The job's logger is made only for a line that is written.
	log := func() *zap.Logger { return w.logger().With(jobFields(j.job)...) }
	if len(stray) > 0 {
		l := log()
		for _, line := range lines(stray) {
			l.Warn("php stdout", zap.String("line", line))
			stderr = append(stderr, "stdout: "+line)
		}
	}
	res := aggregator.Result{Output: out, PID: w.pid, Duration: time.Since(j.start), Stderr: stderr}
	if flags&flagError == 0 {
		return res, nil, false
	}
	var f phpFailure
	if json.Unmarshal(out, &f) != nil {
		f = phpFailure{Error: string(clip(out)), Class: "unknown"}
	}
	res.Output = nil
	var err error
	if f.Class != "Aggregator\\Cancelled" || !j.over {
		res.Exception, err = handlerFailed(log(), j.job, f)
	}
	return res, err, f.Fatal
}

// handlerFailed logs a handler's exception as one line and makes its error.
func handlerFailed(log *zap.Logger, job *aggregator.Job, f phpFailure) (*aggregator.Exception, error) {
	e := &aggregator.Exception{Class: f.Class, Message: f.Error, File: f.File, Line: f.Line, Trace: f.Trace,
		Public: f.Public, Hint: f.Hint}
	fields := []zap.Field{zap.String("kind", job.Kind.String()), zap.String("exception", f.Class),
		zap.String("error", f.Error), zap.String("file", f.File), zap.Int("line", f.Line), zap.String("trace", f.Trace)}
	if f.Hint != "" {
		fields = append(fields, zap.String("hint", f.Hint))
	}
	if f.Public {
		fields = append(fields, zap.Bool("public", true))
	}
	log.Error("handler failed", fields...)
	err := &aggregator.Error{Code: aggregator.EScriptError, Message: fmt.Sprintf("PHP failed: %s: %s", f.Class, f.Error)}
	if f.Hint != "" {
		err.Message += " (" + f.Hint + ")"
	}
	if f.Public {
		err.Public = f.Error
	}
	return e, err
}

// failAll answers every job still in flight once the process is gone.
func (w *worker) failAll(cause error, victim uint32) {
	jobs := w.conv.drain()
	reason, detail := w.leftBecause()
	exit := w.proc.Exit().String()
	if detail != "" {
		exit += ": " + detail
	}
	for _, j := range jobs {
		w.freed(w)
		j.slowEnd()
		if j.over {
			continue
		}
		a := answer{res: aggregator.Result{PID: w.pid, Duration: time.Since(j.start), Stderr: j.stderr}}
		a.err, a.retry = w.diedUnder(j, reason, cause, victim, exit)
		j.answer <- a
	}
}

// diedUnder is the error of job j, in flight when the worker died of
// reason (cause: how its stream ended); retry says it was not j's fault.
func (w *worker) diedUnder(j *inflight, reason Reason, cause error, victim uint32, exit string) (error, bool) {
	switch {
	case j.id == victim:
		return &aggregator.Error{Code: aggregator.EScriptError, Limit: "output_size", Message: fmt.Sprintf(
			"its answer is over aggregator.limit.output-size (%d bytes): worker pid %d killed", w.env.outputLimit, w.pid)}, false
	case reason == ReasonShutdown:
		return errClosed(), false
	case reason == ReasonProtocol:
		return aggregator.Errorf(aggregator.EScriptError, "worker pid %d broke the protocol: %v", w.pid, cause), false
	case reason == ReasonTimeout || reason == ReasonFatal || reason == ReasonOutputLimit || reason == ReasonHealth:
		// Killed for another job's sake: not this job's fault.
		return aggregator.Errorf(aggregator.EScriptError, "worker pid %d was killed (%s) while it ran this job", w.pid, reason), true
	}
	return aggregator.Errorf(aggregator.EScriptError, "worker pid %d died mid-job: %s", w.pid, exit), false
}

package pool

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roadrunner-server/goridge/v3/pkg/frame"
	"github.com/theaspect/aggregator"
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
	// readBuffer buffers what a worker sends: a frame usually comes in one read(2).
	readBuffer = 8 << 10
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

// worker is one worker.php process and its conversation: it sends jobs,
// reads and decodes every frame on its own goroutine (readLoop), matches
// results to jobs by id, performs the fetch() calls its jobs ask for,
// cancels jobs whose time ran out, kills itself when PHP stops answering,
// and records why it retired.
type worker struct {
	env     *workerEnv
	proc    Process
	settle  func(time.Duration) // waits for its stderr to be read (SettleStderr), when its process can tell
	pid     int
	gen     uint64
	started time.Time
	bt      *backtraces
	toPHP   *os.File      // fd 3 of the worker
	fromPHP *os.File      // fd 4 of the worker; read only by its reader (see type reader)
	src     *pipeSource   // fromPHP for in; only the reader uses them
	in      *bufio.Reader // buffered: a frame usually comes in one read(2)
	wake    chan struct{} // readLoop's turn to read (reader set to readerLoop)
	wmu     sync.Mutex    // one frame at a time on toPHP
	wbuf    []byte        // a job frame being written, under wmu
	open    atomic.Bool   // takes new jobs
	gone    chan struct{} // closed once the process exited and every job in flight has its answer
	recycle chan struct{} // closed when the worker asks its slot to replace it
	pongs   chan []byte
	freed   func(*worker) // the supervisor's: one job slot of this worker is free again

	mu            sync.Mutex
	log           *zap.Logger
	state         State
	calls         map[uint32]*call // jobs in PHP, by id
	lastID        uint32
	reason        Reason // why it left (first reason wins)
	recycleReason Reason
	lastErr       string // the last line it wrote to stderr
	memory        uint64 // what PHP reported after its last job
	jobsDone      int64
	stopSent      bool
	reader        reader // who reads fromPHP now
	pingsOut      int    // pings waiting for their pong
	ending        bool   // the process ends (killed, or exited): read to the end of the stream
	endErr        error  // why the stream ended, seen by a job's caller reading it
	endVictim     uint32 // the job whose answer was over the limit, if that was why
}

// reader is who reads a worker's frames. One goroutine at a time does: the
// caller of a job alone on its worker reads its own result (the fast path:
// no goroutine has to hand the answer over, which costs a job more CPU than
// the rest of its Go side), and readLoop reads whenever a frame is awaited
// that no caller reads for (jobs of a busy worker, a cancelled job leaving,
// a pong, the end of the stream). The role changes hands only under w.mu,
// between frames.
type reader int

const (
	readerNone   reader = iota // nothing awaited
	readerLoop                 // readLoop reads
	readerCaller               // a job's caller reads
)

// call is one job in flight on a worker.
type call struct {
	id      uint32
	job     *aggregator.Job
	ctx     context.Context
	start   time.Time
	answer  chan answer // buffered: the one answer of the caller
	over    bool        // the caller has its answer already (time ran out): what PHP sends now only says it is gone
	fetches map[uint32]*fetchCall
	stderr  []string
	slowEnd func() // stops its slowlog timer
}

// answer is what exec returns.
type answer struct {
	res   aggregator.Result
	err   error
	retry bool // the job did not run to its end through no fault of its own: another worker may take it
}

// fetchCall is one fetch() call in flight.
type fetchCall struct {
	id     uint32
	method string
	url    string
	host   string
	since  time.Time
}

// startFailure is why a worker did not start: crash says it was killed by a
// signal (someone else's doing, not a broken configuration).
type startFailure struct {
	err   error
	crash bool
}

// spawn starts a worker and waits for its handshake; ctx ending (the
// runner closing) kills a worker still shaking hands.
func spawn(ctx context.Context, env *workerEnv, gen uint64, freed func(*worker)) (*worker, *startFailure) {
	fail := func(format string, args ...any) *startFailure {
		return &startFailure{err: aggregator.Errorf(aggregator.EScriptStart, format, args...)}
	}
	w := &worker{env: env, gen: gen, started: time.Now(), freed: freed,
		gone: make(chan struct{}), recycle: make(chan struct{}), pongs: make(chan []byte, 1), wake: make(chan struct{}, 1),
		log: env.log, state: Starting, calls: map[uint32]*call{}}
	w.bt = newBacktraces(w.logBacktrace)
	wp, err := env.factory.StartWorker(newLineWriter(func(l string) { w.outputLine("php stdout", l) }),
		newLineWriter(w.stderrLine))
	if err != nil {
		return nil, fail("%v", err)
	}
	p := wp.Process
	w.proc, w.pid, w.toPHP, w.fromPHP = p, p.PID(), wp.ToPHP, wp.FromPHP
	w.settle = func(time.Duration) {}
	if s, ok := p.(interface{ SettleStderr(time.Duration) }); ok {
		w.settle = s.SettleStderr
	}
	w.mu.Lock()
	w.log = env.log.With(zap.Int("pid", w.pid))
	w.mu.Unlock()
	go func() {
		<-p.Done()
		w.readToEnd()
		w.bt.close()
		// A child that left the process group may hold fd 4 open: then the
		// stream never ends by itself.
		t := time.NewTimer(drainWait)
		defer t.Stop()
		select {
		case <-w.gone:
		case <-t.C:
			w.fromPHP.Close()
		}
	}()
	stopKill := context.AfterFunc(ctx, p.Kill)
	err = w.handshake()
	stopKill()
	if err != nil {
		p.Kill()
		<-p.Done()
		closeAll([]*os.File{w.toPHP, w.fromPHP})
		w.mu.Lock()
		detail := w.lastErr
		w.mu.Unlock()
		if detail == "" {
			detail = p.Exit().String()
		}
		f := fail("worker pid %d: %v (%s)", w.pid, err, detail)
		f.crash = errors.Is(err, errExitedEarly) && p.Exit().Signal != 0
		return nil, f
	}
	w.src = &pipeSource{f: w.fromPHP}
	w.in = bufio.NewReaderSize(w.src, readBuffer)
	w.mu.Lock()
	w.state = Ready
	w.mu.Unlock()
	w.open.Store(true)
	go w.readLoop()
	return w, nil
}

// errExitedEarly: the process ended before its handshake.
var errExitedEarly = errors.New("exited before its handshake")

// handshake waits for the worker's first CONTROL frame announcing its pid
// and protocol version.
func (w *worker) handshake() error {
	_ = w.fromPHP.SetReadDeadline(time.Now().Add(w.env.startTimeout))
	defer func() { _ = w.fromPHP.SetReadDeadline(time.Time{}) }()
	f, err := readFrame(w.fromPHP, 1<<16)
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

// exec runs job on the worker, in a job slot the supervisor reserved for
// it (the worker frees it once the job has left PHP). When ctx ends first
// the job ends E_SCRIPT_TIMEOUT at once and is cancelled in PHP (timeUp).
// retry says the job did not run through no fault of its own; err is then
// what to report if no other worker can take it in time.
func (w *worker) exec(ctx context.Context, job *aggregator.Job) (aggregator.Result, error, bool) {
	c, reads, ok := w.begin(ctx, job)
	if !ok {
		w.freed(w)
		return aggregator.Result{}, errCancelled(), true
	}
	if err := w.sendJob(c.id, job); err != nil {
		if reads {
			w.releaseReader()
		}
		w.kill(ReasonCrash)
		// The reader answers c when it sees the process end; the job never
		// reached PHP, so another worker may take it.
		a := <-c.answer
		return a.res, a.err, true
	}
	if ce := w.logger().Check(zap.DebugLevel, "job started"); ce != nil {
		ce.Write(jobFields(job, zap.Uint32("job", c.id))...)
	}
	if reads {
		if a, ok := w.readOwn(ctx, c); ok {
			return a.res, a.err, a.retry
		}
	}
	select {
	case a := <-c.answer:
		return a.res, a.err, a.retry
	case <-ctx.Done():
	}
	return w.timeUp(c, ctx)
}

// begin registers a job; false when the worker takes no jobs any more.
// reads says the job is alone on the worker and its caller reads its
// result itself (readOwn).
func (w *worker) begin(ctx context.Context, job *aggregator.Job) (c *call, reads, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state != Ready || !w.open.Load() {
		return nil, false, false
	}
	if reads = w.reader == readerNone && len(w.calls) == 0; reads {
		w.reader = readerCaller
	}
	w.lastID++
	if w.lastID == 0 {
		w.lastID = 1
	}
	c = &call{id: w.lastID, job: job, ctx: ctx, start: time.Now(), answer: make(chan answer, 1)}
	c.slowEnd = w.bt.slowlog(w.proc, w.env.slowlog, job, c.id, c.start)
	w.calls[c.id] = c
	if !reads {
		w.needReaderLocked()
	}
	return c, reads, true
}

// readOwn reads the worker's frames as its reader until c has its answer;
// false when ctx ended first or the stream did (then the caller waits for
// its answer as any other: readLoop takes over).
func (w *worker) readOwn(ctx context.Context, c *call) (answer, bool) {
	stop := context.AfterFunc(ctx, func() { _ = w.fromPHP.SetReadDeadline(aLongTimeAgo) })
	defer func() {
		if !stop() { // it ran (or runs): its deadline must not stay
			_ = w.fromPHP.SetReadDeadline(time.Time{})
		}
		w.releaseReader()
	}()
	for {
		select {
		case a := <-c.answer:
			return a, true
		default:
		}
		f, err := w.nextFrame(func() bool { return ctx.Err() != nil })
		if err == errInterrupted {
			return answer{}, false
		}
		if err == nil {
			err = w.dispatch(f)
			if err != nil {
				w.setReason(ReasonProtocol)
			}
		} else {
			err = w.readFailed(f, err)
		}
		if err != nil {
			w.mu.Lock()
			if w.endErr == nil {
				w.endErr = err
				w.endVictim = victimOf(f, err)
			}
			w.mu.Unlock()
			return answer{}, false
		}
	}
}

// aLongTimeAgo, as a read deadline, interrupts a read at once.
var aLongTimeAgo = time.Unix(1, 0)

// errInterrupted: the reader was asked to stop reading (its job's time ran out).
var errInterrupted = errors.New("interrupted")

// nextFrame waits for a frame and reads it, as the worker's reader. Only
// the wait can be interrupted (a read deadline, when interrupted says so):
// once a frame has begun it is read to its end, so the stream never loses
// its step.
func (w *worker) nextFrame(interrupted func() bool) (*inFrame, error) {
	for {
		w.src.interruptible = true
		_, err := w.in.Peek(1)
		w.src.interruptible = false
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, err
		}
		// A deadline meant for another reader, or for us.
		_ = w.fromPHP.SetReadDeadline(time.Time{})
		if interrupted != nil && interrupted() {
			return nil, errInterrupted
		}
	}
	limit := w.env.outputLimit
	if limit > 0 {
		limit += maxStrayOutput
	}
	return readFrame(w.in, limit)
}

// pipeSource reads a worker's pipe for its bufio.Reader: while a frame is
// read, a read deadline (set to interrupt a wait) is cleared and the read
// goes on.
type pipeSource struct {
	f             *os.File
	interruptible bool // the reader waits for a frame: a deadline ends the wait
}

func (p *pipeSource) Read(b []byte) (int, error) {
	for {
		n, err := p.f.Read(b)
		if n > 0 || p.interruptible || !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		_ = p.f.SetReadDeadline(time.Time{})
	}
}

// needReaderLocked makes readLoop the reader if no one reads: a frame is
// awaited. w.mu is held.
func (w *worker) needReaderLocked() {
	if w.reader != readerNone {
		return
	}
	w.reader = readerLoop
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// releaseReader ends a caller's turn as the reader; readLoop takes over if
// frames are still awaited.
func (w *worker) releaseReader() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.reader = readerNone
	if w.readNeededLocked() {
		w.needReaderLocked()
	}
}

// readNeededLocked says a frame is awaited. w.mu is held.
func (w *worker) readNeededLocked() bool {
	return len(w.calls) > 0 || w.pingsOut > 0 || w.ending || w.endErr != nil
}

// readToEnd: the process ends; its stream is read to its end at once, so
// the worker leaves as soon as the process is gone.
func (w *worker) readToEnd() {
	w.mu.Lock()
	w.ending = true
	w.needReaderLocked()
	w.mu.Unlock()
}

// timeUp ends a job whose time ran out (or whose browser left): the caller
// gets E_SCRIPT_TIMEOUT now. A job running PHP code past its time is stuck:
// its backtrace is logged and the worker killed (its other jobs run again
// elsewhere). A job waiting in fetch() is cancelled inside PHP, which runs
// its finally blocks and goes on with its other jobs; if it does not leave
// within cancelGrace, PHP is not answering and the worker is killed.
func (w *worker) timeUp(c *call, ctx context.Context) (aggregator.Result, error, bool) {
	w.mu.Lock()
	if w.calls[c.id] != c { // its answer came as the time ran out: it counts
		w.mu.Unlock()
		a := <-c.answer
		return a.res, a.err, a.retry
	}
	c.over = true
	doing := c.doingLocked()
	stuck := len(c.fetches) == 0 && w.othersWaitLocked(c)
	res := aggregator.Result{PID: w.pid, Duration: time.Since(c.start), Stderr: append([]string(nil), c.stderr...)}
	w.mu.Unlock()
	c.slowEnd()
	deadline := errors.Is(ctx.Err(), context.DeadlineExceeded)
	if stuck {
		w.setReason(ReasonTimeout)
		overrun(w.proc, w.bt, c.job, c.id, c.start, deadline)
	} else {
		_ = w.send(controlFrame(map[string]uint32{"cancel": c.id}))
		time.AfterFunc(cancelGrace, func() {
			w.mu.Lock()
			still := w.calls[c.id] == c
			w.mu.Unlock()
			if still {
				w.logger().Warn("a cancelled job did not leave PHP: killing the worker",
					jobFields(c.job, zap.Duration("grace", cancelGrace))...)
				w.setReason(ReasonTimeout)
				overrun(w.proc, w.bt, c.job, c.id, c.start, true)
			}
		})
	}
	if !deadline {
		return res, aggregator.Errorf(aggregator.EScriptTimeout, "cancelled (its session ended) while %s", doing), false
	}
	return res, aggregator.Errorf(aggregator.EScriptTimeout, "its time ran out while %s", doing), false
}

// doingLocked says what a job is doing, for the timeout's log line.
func (c *call) doingLocked() string {
	var oldest *fetchCall
	for _, f := range c.fetches {
		if oldest == nil || f.since.Before(oldest.since) {
			oldest = f
		}
	}
	if oldest == nil {
		return "running PHP code"
	}
	s := fmt.Sprintf("waiting for %s %s (%.1f s)", oldest.method, oldest.url, time.Since(oldest.since).Seconds())
	if n := len(c.fetches); n > 1 {
		s += fmt.Sprintf(" and %d more calls", n-1)
	}
	return s
}

// othersWaitLocked reports whether every other job of the worker waits in
// fetch(): then the PHP code running now is c's.
func (w *worker) othersWaitLocked(c *call) bool {
	for _, x := range w.calls {
		if x != c && len(x.fetches) == 0 {
			return false
		}
	}
	return true
}

// sendJob writes a job frame [typeJob, id, kind] to the worker: the bytes
// newFrame gives, encoded into a buffer the worker keeps (most jobs are
// small), with no frame built.
func (w *worker) sendJob(id uint32, job *aggregator.Job) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	b := appendFrame(w.wbuf[:0], flagRaw, job.Input, typeJob, id, uint32(job.Kind))
	_, err := w.toPHP.Write(b)
	if cap(b) <= 64<<10 {
		w.wbuf = b
	}
	return err
}

// send writes one frame to the worker.
func (w *worker) send(f *frame.Frame) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if _, err := w.toPHP.Write(f.Bytes()); err != nil {
		return err
	}
	return nil
}

// readLoop reads the worker's frames whenever they are awaited and no
// job's caller reads them, until the stream ends (or a caller saw it end);
// then it waits for the process and answers every job still in flight.
func (w *worker) readLoop() {
	var victim uint32 // a job whose answer broke the stream
	var cause error
	for cause == nil {
		<-w.wake
		cause, victim = w.readWhileNeeded()
	}
	w.kill(ReasonCrash)
	w.waitExit()
	w.failAll(cause, victim)
	close(w.gone)
}

// readWhileNeeded reads frames as the worker's reader until none is
// awaited; it returns why the stream ended, if it did.
func (w *worker) readWhileNeeded() (error, uint32) {
	for {
		w.mu.Lock()
		if w.endErr != nil {
			err, victim := w.endErr, w.endVictim
			w.mu.Unlock()
			return err, victim
		}
		if !w.readNeededLocked() {
			w.reader = readerNone
			w.mu.Unlock()
			return nil, 0
		}
		w.mu.Unlock()
		f, err := w.nextFrame(nil)
		if err != nil {
			return w.readFailed(f, err), victimOf(f, err)
		}
		if err := w.dispatch(f); err != nil {
			w.setReason(ReasonProtocol)
			return err, 0
		}
	}
}

// readFailed records why the worker leaves when reading its stream failed
// and returns err.
func (w *worker) readFailed(f *inFrame, err error) error {
	switch {
	case errors.Is(err, errFrameTooLarge):
		w.setReason(ReasonOutputLimit)
	case !errors.Is(err, os.ErrClosed) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF):
		w.setReason(ReasonProtocol) // a corrupt frame: the stream is out of step
	}
	return err
}

// victimOf is the job whose answer was over the limit, when that is err.
func victimOf(f *inFrame, err error) uint32 {
	if errors.Is(err, errFrameTooLarge) {
		if o := f.options; len(o) >= 2 && o[0] == typeJob {
			return o[1]
		}
	}
	return 0
}

// waitExit waits for the process to end; the stream's end usually means it
// has, and a worker that closed fd 4 but lives on has just been killed.
func (w *worker) waitExit() {
	<-w.proc.Done()
	w.toPHP.Close()
	w.fromPHP.Close()
	w.mu.Lock()
	w.state = Exited
	w.mu.Unlock()
}

// dispatch handles one frame from the worker.
func (w *worker) dispatch(f *inFrame) error {
	if f.flags&flagControl != 0 {
		select {
		case w.pongs <- f.payload:
		default:
		}
		return nil
	}
	o := f.options
	if len(o) < 2 {
		return fmt.Errorf("a frame without type and job id: flags %#x", f.flags)
	}
	switch o[0] {
	case typeJob:
		return w.result(o, f.flags, f.payload)
	case typeFetch:
		return w.fetchCall(o, f.payload)
	}
	return fmt.Errorf("a frame of unknown type %d", o[0])
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
	w.mu.Lock()
	c := w.calls[o[1]]
	if c == nil {
		w.mu.Unlock()
		w.logger().Warn("a result for no job in flight: ignored", zap.Uint32("job", o[1]))
		return nil
	}
	delete(w.calls, c.id)
	w.memory = uint64(o[2])
	w.jobsDone++
	jobsDone, memory := w.jobsDone, w.memory
	stop := w.state == Stopping && len(w.calls) == 0 && !w.stopSent
	w.stopSent = w.stopSent || stop
	stderr := c.stderr
	w.mu.Unlock()
	w.freed(w)
	c.slowEnd()

	out, stray := payload[:len(payload)-int(o[3])], payload[len(payload)-int(o[3]):]
	// The job's logger is made only for a line that is written.
	log := func() *zap.Logger { return w.logger().With(jobFields(c.job)...) }
	if len(stray) > 0 {
		l := log()
		for _, line := range lines(stray) {
			l.Warn("php stdout", zap.String("line", line))
			stderr = append(stderr, "stdout: "+line)
		}
	}
	res := aggregator.Result{Output: out, PID: w.pid, Duration: time.Since(c.start), Stderr: stderr}
	var err error
	fatal := false
	if flags&flagError != 0 {
		var f phpFailure
		if json.Unmarshal(out, &f) != nil {
			f = phpFailure{Error: string(clip(out)), Class: "unknown"}
		}
		fatal = f.Fatal
		res.Output = nil
		if f.Class != "Aggregator\\Cancelled" || !c.over {
			res.Exception, err = handlerFailed(log(), c.job, f)
		}
	}
	// The worker closes to new jobs before the answer goes out: the caller's
	// next job must not land on a worker that has had its max-jobs.
	switch {
	case fatal: // PHP is on its way out
		w.kill(ReasonFatal)
	case w.env.maxJobs > 0 && jobsDone >= w.env.maxJobs:
		w.askRecycle(ReasonMaxJobs)
	case w.env.maxMemory > 0 && memory > w.env.maxMemory:
		w.askRecycle(ReasonMaxMemory)
	}
	switch {
	case c.over:
		if ce := w.logger().Check(zap.DebugLevel, "a cancelled job left PHP"); ce != nil {
			ce.Write(jobFields(c.job, zap.Duration("after", time.Since(c.start)))...)
		}
	default:
		c.answer <- answer{res: res, err: err}
	}
	if stop {
		w.sendStop()
	}
	return nil
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

// fetchHead is the JSON head of a fetch frame (src/Http/Request.php).
type fetchHead struct {
	Method  string      `json:"method"`
	URL     string      `json:"url"`
	Headers [][2]string `json:"headers"`
	Timeout *float64    `json:"timeout"`
}

// fetchCall handles a job's fetch() call: [typeFetch, id, call, head bytes].
func (w *worker) fetchCall(o []uint32, payload []byte) error {
	if len(o) < 4 || int(o[3]) > len(payload) {
		return fmt.Errorf("a malformed fetch frame: options %v, %d bytes", o, len(payload))
	}
	var head fetchHead
	if err := json.Unmarshal(payload[:o[3]], &head); err != nil {
		return fmt.Errorf("a fetch frame with a bad head: %v", err)
	}
	req := &aggregator.FetchRequest{Method: head.Method, URL: head.URL, Headers: head.Headers,
		Body: payload[o[3]:]}
	if head.Timeout != nil && *head.Timeout > 0 {
		req.Timeout = time.Duration(*head.Timeout * float64(time.Second))
	}
	host := head.URL
	if u, err := url.Parse(head.URL); err == nil {
		host = u.Host
	}
	fc := &fetchCall{id: o[2], method: head.Method, url: head.URL, host: host, since: time.Now()}
	w.mu.Lock()
	c := w.calls[o[1]]
	if c == nil || c.over {
		w.mu.Unlock()
		return nil // the job is being cancelled
	}
	if c.fetches == nil { // most jobs make no call: the map is made for the first
		c.fetches = map[uint32]*fetchCall{}
	}
	c.fetches[fc.id] = fc
	w.mu.Unlock()
	go w.perform(c, fc, req)
	return nil
}

// perform makes one fetch() call and sends its answer to the job.
func (w *worker) perform(c *call, fc *fetchCall, req *aggregator.FetchRequest) {
	var resp *aggregator.FetchResponse
	var err error
	if w.env.fetcher == nil {
		err = &aggregator.FetchError{Method: req.Method, URL: req.URL, Cause: "network", Detail: "this runner performs no HTTP calls"}
	} else {
		resp, err = w.env.fetcher.Fetch(c.ctx, req)
	}
	took := time.Since(fc.since)
	w.mu.Lock()
	// Once the job's own time is up it is being cancelled: an answer now
	// (its call failing for that very reason) would only race the cancel,
	// and the call stays listed, so that timeUp, which may run just after,
	// sees the job waiting in fetch() (to cancel, not kill) and names the URL.
	live := w.calls[c.id] == c && !c.over && c.ctx.Err() == nil
	if live || c.ctx.Err() == nil {
		delete(c.fetches, fc.id)
	}
	w.mu.Unlock()
	log := w.logger()
	var fe *aggregator.FetchError
	switch {
	case !live && c.ctx.Err() != nil:
		// The job's time ran out during the call: its own log line says so.
		if errors.As(err, &fe) {
			fe = nil
		}
	case errors.As(err, &fe):
		log.Warn("fetch failed", jobFields(c.job, zap.String("method", fe.Method), zap.String("url", fe.URL),
			zap.String("cause", fe.Cause), zap.String("error", fe.Detail), zap.Duration("took", took))...)
	case err != nil:
		fe = &aggregator.FetchError{Method: req.Method, URL: req.URL, Cause: "network", Detail: err.Error()}
		log.Warn("fetch failed", jobFields(c.job, zap.String("method", req.Method), zap.String("url", req.URL),
			zap.String("cause", fe.Cause), zap.Error(err), zap.Duration("took", took))...)
	case resp.Status >= 400:
		log.Info("fetch answered with an error status", jobFields(c.job, zap.String("method", req.Method),
			zap.String("url", req.URL), zap.Int("status", resp.Status), zap.Duration("took", took))...)
	default:
		if ce := log.Check(zap.DebugLevel, "fetch answered"); ce != nil {
			ce.Write(jobFields(c.job, zap.String("method", req.Method), zap.String("url", req.URL),
				zap.Int("status", resp.Status), zap.Int("bytes", len(resp.Body)), zap.Duration("took", took))...)
		}
	}
	if !live {
		return
	}
	var f *frame.Frame
	if fe != nil {
		b, _ := json.Marshal(map[string]string{"cause": fe.Cause, "message": fe.Error()})
		f = newFrame(flagRaw|flagError, b, typeFetch, c.id, fc.id, uint32(len(b)))
	} else {
		head, _ := json.Marshal(struct {
			Status  int               `json:"status"`
			Headers map[string]string `json:"headers"`
			URL     string            `json:"url"`
		}{resp.Status, resp.Headers, req.URL})
		f = newFrame(flagRaw, append(head, resp.Body...), typeFetch, c.id, fc.id, uint32(len(head)))
	}
	_ = w.send(f) // a broken pipe ends the worker through readLoop
}

// failAll answers every job still in flight once the process is gone.
func (w *worker) failAll(cause error, victim uint32) {
	w.mu.Lock()
	calls := w.calls
	w.calls = map[uint32]*call{}
	reason, detail := w.reason, w.lastErr
	w.mu.Unlock()
	exit := w.proc.Exit().String()
	if detail != "" {
		exit += ": " + detail
	}
	for _, c := range calls {
		w.freed(w)
		c.slowEnd()
		if c.over {
			continue
		}
		a := answer{res: aggregator.Result{PID: w.pid, Duration: time.Since(c.start), Stderr: c.stderr}}
		switch {
		case c.id == victim:
			a.err = &aggregator.Error{Code: aggregator.EScriptError, Limit: "output_size", Message: fmt.Sprintf(
				"its answer is over aggregator.limit.output-size (%d bytes): worker pid %d killed", w.env.outputLimit, w.pid)}
		case reason == ReasonShutdown:
			a.err = errClosed()
		case reason == ReasonProtocol:
			a.err = aggregator.Errorf(aggregator.EScriptError, "worker pid %d broke the protocol: %v", w.pid, cause)
		case reason == ReasonTimeout || reason == ReasonFatal || reason == ReasonOutputLimit || reason == ReasonHealth:
			// Killed for another job's sake: not this job's fault.
			a.retry = true
			a.err = aggregator.Errorf(aggregator.EScriptError, "worker pid %d was killed (%s) while it ran this job", w.pid, reason)
		default:
			a.err = aggregator.Errorf(aggregator.EScriptError, "worker pid %d died mid-job: %s", w.pid, exit)
		}
		c.answer <- a
	}
}

// setReason records why the worker leaves, unless a reason is known.
func (w *worker) setReason(r Reason) {
	w.mu.Lock()
	if w.reason == "" {
		w.reason = r
	}
	w.mu.Unlock()
}

// kill SIGKILLs the worker's process group; r is why, unless a reason is known.
func (w *worker) kill(r Reason) {
	w.setReason(r)
	w.open.Store(false)
	w.proc.Kill()
	w.readToEnd()
}

// retire stops the worker gracefully: it takes no new jobs, the jobs in
// flight run to their end, then it is asked to exit (and killed if it has
// not within stopGrace).
func (w *worker) retire(r Reason) {
	w.open.Store(false)
	w.mu.Lock()
	if w.reason == "" {
		w.reason = r
	}
	if !next(w.state, Stopping) {
		w.mu.Unlock()
		return
	}
	w.state = Stopping
	stop := len(w.calls) == 0 && !w.stopSent
	w.stopSent = w.stopSent || stop
	w.mu.Unlock()
	if stop {
		w.sendStop()
	}
}

// sendStop asks the worker to exit and kills it if it has not within stopGrace.
func (w *worker) sendStop() {
	_ = w.send(controlFrame(map[string]bool{"stop": true}))
	go func() {
		t := time.NewTimer(stopGrace)
		defer t.Stop()
		select {
		case <-w.gone:
		case <-t.C:
			w.proc.Kill()
		}
	}()
}

// askRecycle asks the worker's slot to replace it (once): the slot starts
// the replacement first, then retires this one.
func (w *worker) askRecycle(r Reason) {
	w.mu.Lock()
	if w.recycleReason != "" {
		w.mu.Unlock()
		return
	}
	w.recycleReason = r
	ch := w.recycle
	w.mu.Unlock()
	w.open.Store(false) // done with new jobs, as max-jobs says; the jobs in flight go on
	close(ch)
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
	if w.state == Ready {
		w.open.Store(true)
	}
}

// ping checks the worker answers within timeout and records its memory.
func (w *worker) ping(timeout time.Duration) error {
	select { // a stale pong
	case <-w.pongs:
	default:
	}
	w.mu.Lock()
	w.pingsOut++
	w.needReaderLocked()
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.pingsOut--
		w.mu.Unlock()
	}()
	if err := w.send(controlFrame(map[string]bool{"ping": true})); err != nil {
		return err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case p := <-w.pongs:
		var pong struct {
			Pong   bool   `json:"pong"`
			Memory uint64 `json:"memory"`
		}
		if json.Unmarshal(p, &pong) != nil || !pong.Pong {
			return fmt.Errorf("bad pong %q", clip(p))
		}
		w.mu.Lock()
		w.memory = pong.Memory
		w.mu.Unlock()
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

// idle reports whether the worker takes jobs and has none in flight.
func (w *worker) idle() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.state == Ready && len(w.calls) == 0
}

// load is the number of jobs in PHP.
func (w *worker) load() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.calls)
}

// info describes the worker for /workers.
func (w *worker) info() aggregator.ProcInfo {
	w.mu.Lock()
	defer w.mu.Unlock()
	state := w.state.String()
	switch {
	case w.state == Ready && !w.open.Load():
		state = Stopping.String() // takes no new jobs: being replaced, or killed
	case w.state == Ready && len(w.calls) > 0:
		state = "busy"
	case w.state == Ready:
		state = "idle"
	}
	p := aggregator.ProcInfo{PID: w.pid, State: state, Jobs: w.jobsDone, Memory: w.memory, Started: w.started}
	for _, c := range w.calls {
		if c.over {
			continue
		}
		j := aggregator.JobInfo{Session: c.job.Session, Task: c.job.Task, Kind: c.job.Kind.String(),
			Class: c.job.Class, Since: c.start}
		for _, f := range c.fetches {
			j.Calls = append(j.Calls, aggregator.CallInfo{Method: f.method, URL: f.url, Host: f.host, Since: f.since})
		}
		p.Running = append(p.Running, j)
	}
	return p
}

// logger is the worker's logger (with its pid once it has one).
func (w *worker) logger() *zap.Logger {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.log
}

// stderrLine logs a line PHP wrote to stderr, tagged with the job that
// wrote it when it can be told (one job in flight).
func (w *worker) stderrLine(line string) {
	if w.bt.line(line) {
		return
	}
	w.mu.Lock()
	w.lastErr = line
	var c *call
	n := len(w.calls)
	if n == 1 {
		for _, x := range w.calls {
			c = x
		}
		if len(c.stderr) < maxJobLines {
			c.stderr = append(c.stderr, line)
		}
	}
	log := w.log
	w.mu.Unlock()
	switch {
	case c != nil:
		log = log.With(jobFields(c.job)...)
	case n > 1:
		log = log.With(zap.Int("jobs_in_flight", n))
	}
	log.Warn("php stderr", zap.String("line", line))
}

// outputLine logs a line PHP wrote to stdout outside any job (worker.php
// sends a job's own output with its result); PHP itself says there that
// it cannot open worker.php.
func (w *worker) outputLine(msg, line string) {
	w.mu.Lock()
	w.lastErr = line
	log := w.log
	w.mu.Unlock()
	log.Warn(msg, zap.String("line", line))
}

// logBacktrace logs a backtrace of the worker's PHP, tagged with the job it
// was asked for, or else with the job its section is about.
func (w *worker) logBacktrace(req *btRequest, id uint32, frames []string, note string) {
	w.mu.Lock()
	log := w.log
	var job *aggregator.Job
	var since time.Time
	if c := w.calls[id]; c != nil {
		job, since = c.job, c.start
	}
	w.mu.Unlock()
	why := whyAsked
	if req != nil {
		why, job, since = req.why, req.job, req.since
	}
	log.Log(backtraceLevel(req), why, backtraceFields(job, since, frames, note)...)
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

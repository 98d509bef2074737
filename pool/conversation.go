package pool

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/theaspect/aggregator"
	"github.com/theaspect/aggregator/pool/fsm"
)

// conversation is the bookkeeping of what a worker and its PHP have in
// flight: the jobs by id (with the fetch() calls each waits for), the
// pings waiting for their pong, and whose turn it is to read the next
// frame. It does no I/O and logs nothing: the worker asks it, then writes,
// reads or answers. One mutex guards it all, because who reads depends on
// what is awaited, and a retired worker's last job is what drains it.
type conversation struct {
	life    *fsm.Machine // the worker's: a job is taken only while it is Ready
	slowlog func(job *aggregator.Job, id uint32, start time.Time) (over func())
	wake    chan struct{} // readLoop's turn to read (reader set to readerLoop)
	pongs   chan []byte   // the payloads of CONTROL frames, for ping

	mu        sync.Mutex
	jobs      map[uint32]*inflight
	lastID    uint32
	reader    reader // who reads the worker's frames now
	pingsOut  int    // pings waiting for their pong
	endErr    error  // why the stream ended, seen by a job's caller reading it
	endVictim uint32 // the job whose answer was over the limit, if that was why
	jobsDone  int64
	memory    uint64 // what PHP reported after its last job, or in its last pong
}

// reader is who reads a worker's frames. One goroutine at a time does: the
// caller of a job alone on its worker reads its own result (the fast path:
// no goroutine has to hand the answer over, which costs a job more CPU than
// the rest of its Go side; docs/performance.md), and readLoop reads whenever
// a frame is awaited that no caller reads for (jobs of a busy worker, a
// cancelled job leaving, a pong, the end of the stream). The role changes
// hands only under the conversation's lock, between frames.
type reader int

const (
	readerNone   reader = iota // nothing awaited
	readerLoop                 // readLoop reads
	readerCaller               // a job's caller reads
)

// inflight is one job in flight on a worker. over, fetches and stderr
// change under the conversation's lock; the rest is set once, in begin.
type inflight struct {
	id      uint32
	job     *aggregator.Job
	ctx     context.Context
	start   time.Time
	answer  chan answer // buffered: the one answer of the caller
	slowEnd func()      // stops its slowlog timer

	over    bool                  // the caller has its answer already (time ran out): what PHP sends now only says it is gone
	fetches map[uint32]*fetchCall // its fetch() calls in flight, by call id
	stderr  []string              // its stderr lines, for its Result
}

// answer is what a job's caller gets.
type answer struct {
	res   aggregator.Result
	err   error
	retry bool // the job did not run to its end through no fault of its own: another worker may take it
}

func newConversation(life *fsm.Machine, slowlog func(*aggregator.Job, uint32, time.Time) func()) *conversation {
	return &conversation{life: life, slowlog: slowlog, wake: make(chan struct{}, 1), pongs: make(chan []byte, 1),
		jobs: map[uint32]*inflight{}}
}

// begin registers a job under a new id; false when the worker takes no
// jobs any more. reads says the job is alone on the worker and its caller
// reads its result itself (readOwn).
func (c *conversation) begin(ctx context.Context, job *aggregator.Job) (j *inflight, reads, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.life.State().TakesJobs() {
		return nil, false, false
	}
	if reads = c.reader == readerNone && len(c.jobs) == 0; reads {
		c.reader = readerCaller
	}
	c.lastID++
	if c.lastID == 0 {
		c.lastID = 1
	}
	j = &inflight{id: c.lastID, job: job, ctx: ctx, start: time.Now(), answer: make(chan answer, 1)}
	j.slowEnd = c.slowlog(job, j.id, j.start)
	c.jobs[j.id] = j
	if !reads {
		c.needReaderLocked()
	}
	return j, reads, true
}

// finish takes the job a result frame is for (nil: none in flight with
// that id) and records what PHP said of its memory. stderr is the job's
// lines; stop says it was the last job of a retired worker, which is now
// Stopped and must be asked to exit.
func (c *conversation) finish(id uint32, memory uint64) (j *inflight, stderr []string, jobsDone int64, stop bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	j = c.jobs[id]
	if j == nil {
		return nil, nil, 0, false
	}
	delete(c.jobs, id)
	c.memory = memory
	c.jobsDone++
	stop = len(c.jobs) == 0 && c.life.Fire(fsm.Drained) // Drained is refused unless it is Stopping
	return j, j.stderr, c.jobsDone, stop
}

// retire moves the worker to Stopping (false when it is past that);
// stop says it holds no job, is now Stopped and must be asked to exit.
func (c *conversation) retire() (stop bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.life.Fire(fsm.Retire) {
		return false
	}
	return len(c.jobs) == 0 && c.life.Fire(fsm.Drained)
}

// timeUp marks j over: its caller answers now. ok is false when its result
// came first (it counts). doing says what it was doing, stderr is a copy
// of its lines, and stuck says PHP runs its code: it waits in no fetch()
// call, and every other job of the worker does.
func (c *conversation) timeUp(j *inflight) (stderr []string, doing string, stuck, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.jobs[j.id] != j {
		return nil, "", false, false
	}
	j.over = true
	return append([]string(nil), j.stderr...), j.doingLocked(), len(j.fetches) == 0 && c.othersWaitLocked(j), true
}

// holds reports whether j is still in PHP.
func (c *conversation) holds(j *inflight) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.jobs[j.id] == j
}

// doingLocked says what a job is doing, for the timeout's log line.
func (j *inflight) doingLocked() string {
	var oldest *fetchCall
	for _, f := range j.fetches {
		if oldest == nil || f.since.Before(oldest.since) {
			oldest = f
		}
	}
	if oldest == nil {
		return "running PHP code"
	}
	s := fmt.Sprintf("waiting for %s %s (%.1f s)", oldest.method, oldest.url, time.Since(oldest.since).Seconds())
	if n := len(j.fetches); n > 1 {
		s += fmt.Sprintf(" and %d more calls", n-1)
	}
	return s
}

// othersWaitLocked reports whether every other job of the worker waits in
// fetch(): then the PHP code running now is j's.
func (c *conversation) othersWaitLocked(j *inflight) bool {
	for _, x := range c.jobs {
		if x != j && len(x.fetches) == 0 {
			return false
		}
	}
	return true
}

// fetchStarted records a fetch() call of job id; nil when that job is not
// in flight or is being cancelled.
func (c *conversation) fetchStarted(id uint32, fc *fetchCall) *inflight {
	c.mu.Lock()
	defer c.mu.Unlock()
	j := c.jobs[id]
	if j == nil || j.over {
		return nil
	}
	if j.fetches == nil { // most jobs make no call: the map is made for the first
		j.fetches = map[uint32]*fetchCall{}
	}
	j.fetches[fc.id] = fc
	return j
}

// fetchDone records the end of a fetch() call; live says its job waits
// for the answer. Once the job's own time is up it is being cancelled: an
// answer now (its call failing for that very reason) would only race the
// cancel, and the call stays listed, so that timeUp, which may run just
// after, sees the job waiting in fetch() (to cancel, not kill) and names
// the URL.
func (c *conversation) fetchDone(j *inflight, fc *fetchCall) (live bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	live = c.jobs[j.id] == j && !j.over && j.ctx.Err() == nil
	if live || j.ctx.Err() == nil {
		delete(j.fetches, fc.id)
	}
	return live
}

// drain takes every job still in flight: the process is gone.
func (c *conversation) drain() map[uint32]*inflight {
	c.mu.Lock()
	defer c.mu.Unlock()
	jobs := c.jobs
	c.jobs = map[uint32]*inflight{}
	return jobs
}

// stderrLine keeps a line PHP wrote to stderr with the job that wrote it,
// when that can be told (one job in flight), and returns that job; n is
// how many jobs are in flight.
func (c *conversation) stderrLine(line string) (job *aggregator.Job, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n = len(c.jobs); n != 1 {
		return nil, n
	}
	for _, j := range c.jobs {
		if len(j.stderr) < maxJobLines {
			j.stderr = append(j.stderr, line)
		}
		job = j.job
	}
	return job, n
}

// jobOf is the job with id in flight, and when it started; nil if none.
func (c *conversation) jobOf(id uint32) (*aggregator.Job, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if j := c.jobs[id]; j != nil {
		return j.job, j.start
	}
	return nil, time.Time{}
}

// pingSent awaits one more pong, pingDone one less.
func (c *conversation) pingSent() {
	c.mu.Lock()
	c.pingsOut++
	c.needReaderLocked()
	c.mu.Unlock()
}

func (c *conversation) pingDone() {
	c.mu.Lock()
	c.pingsOut--
	c.mu.Unlock()
}

// setMemory records what PHP said of its memory in a pong.
func (c *conversation) setMemory(memory uint64) {
	c.mu.Lock()
	c.memory = memory
	c.mu.Unlock()
}

// load is the number of jobs in PHP.
func (c *conversation) load() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.jobs)
}

// finished is the number of jobs that left PHP with a result.
func (c *conversation) finished() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.jobsDone
}

// snapshot is what /workers shows of the conversation.
func (c *conversation) snapshot() (running []aggregator.JobInfo, inPHP int, jobsDone int64, memory uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, j := range c.jobs {
		if j.over {
			continue
		}
		ji := aggregator.JobInfo{Session: j.job.Session, Task: j.job.Task, Kind: j.job.Kind.String(),
			Class: j.job.Class, Since: j.start}
		for _, f := range j.fetches {
			ji.Calls = append(ji.Calls, aggregator.CallInfo{Method: f.method, URL: f.url, Host: f.host, Since: f.since})
		}
		running = append(running, ji)
	}
	return running, len(c.jobs), c.jobsDone, c.memory
}

// Whose turn it is to read.

// needReaderLocked makes readLoop the reader if no one reads: a frame is
// awaited. c.mu is held.
func (c *conversation) needReaderLocked() {
	if c.reader != readerNone {
		return
	}
	c.reader = readerLoop
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// releaseReader ends a caller's turn as the reader; readLoop takes over if
// frames are still awaited.
func (c *conversation) releaseReader() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reader = readerNone
	if c.readNeededLocked() {
		c.needReaderLocked()
	}
}

// readNeededLocked says a frame is awaited. c.mu is held.
func (c *conversation) readNeededLocked() bool {
	return len(c.jobs) > 0 || c.pingsOut > 0 || c.life.State().Ended() || c.endErr != nil
}

// readToEnd: the process was killed or ended; its stream is read to its
// end at once, so the worker leaves as soon as the process is gone.
func (c *conversation) readToEnd() {
	c.mu.Lock()
	c.needReaderLocked()
	c.mu.Unlock()
}

// streamEnded records why the stream ended, seen by a caller reading it;
// readLoop takes it from there.
func (c *conversation) streamEnded(err error, victim uint32) {
	c.mu.Lock()
	if c.endErr == nil {
		c.endErr, c.endVictim = err, victim
	}
	c.mu.Unlock()
}

// readOn is readLoop's question before each frame: on says a frame is
// awaited; when none is, its turn ends. end is why the stream ended, when
// a caller saw it end.
func (c *conversation) readOn() (on bool, end error, victim uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.endErr != nil {
		return false, c.endErr, c.endVictim
	}
	if !c.readNeededLocked() {
		c.reader = readerNone
		return false, nil, 0
	}
	return true, nil, 0
}

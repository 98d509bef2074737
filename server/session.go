package server

import (
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"github.com/theaspect/aggregator"
	"go.uber.org/zap"
)

// task is one PHP call of a session: the suppliers task or an items task.
type task struct {
	id       int64
	sess     *session
	kind     aggregator.Kind
	input    []byte
	info     json.RawMessage // the supplier's info field, echoed as _info
	class    string          // the supplier's class, for logs
	queuedAt time.Time
	ctx      context.Context // ends when the task's time runs out or the session ends
	cancel   context.CancelFunc
	stopWait func() bool   // stops the watch that cancels it if its time runs out while queued
	elem     *list.Element // its place in the queue while waiting (guarded by the queue)
}

// unwatch stops the watch for the task's time running out while queued (if
// it was queued: a task can end before, e.g. refused over the limit).
func (t *task) unwatch() {
	if t.stopWait != nil {
		t.stopWait()
	}
}

func (t *task) name() TaskName {
	if t.kind == aggregator.Suppliers {
		return TaskSuppliers
	}
	return TaskItems
}

// Events a session's loop receives.
type (
	evMessage  struct{ data []byte } // the browser sent a message
	evBadUTF8  struct{}              // the browser sent a text frame that is not UTF-8
	evGone     struct{ err error }   // the browser closed, or the socket broke
	evTaskDone struct {              // a task's PHP call ended
		t   *task
		res aggregator.Result
		err error
	}
)

// session is one websocket and its search (or, for /echo, its echo). Its
// loop goroutine owns the fields marked "owned by the loop"; other
// goroutines talk to it through events. queued belongs to the server's
// queue (guarded by its mutex), out to the connection's writer, ctx/cancel
// end its tasks.
type session struct {
	id       string
	echo     bool // sends each message back instead of searching
	srv      *Server
	conn     *websocket.Conn
	out      *outbox
	events   chan any
	done     chan struct{} // closed when the loop has ended
	ctx      context.Context
	cancel   context.CancelFunc
	log      *zap.Logger
	openedAt time.Time
	queued   taskList // guarded by srv.queue

	// owned by the loop
	started bool
	params  json.RawMessage // the request's faulty fields, for _params
	tasks   map[int64]*task // tasks not ended yet
	nTasks  int             // items tasks created
	nItems  int             // items sent
	nFailed int             // tasks that ended with an error message
	ended   bool
	// when the search ended normally (its last task done); read by run
	// after the loop has returned
	finished time.Time
}

func newSession(srv *Server, conn *websocket.Conn, echo bool, remote string) *session {
	id := strconv.FormatInt(srv.sessionSeq.Add(1), 10)
	ctx, cancel := context.WithCancel(srv.ctx)
	return &session{
		id: id, echo: echo, srv: srv, conn: conn, out: newOutbox(srv.cfg.SendQueue, srv.cfg.SendQueueBytes),
		events: make(chan any, 16), done: make(chan struct{}), ctx: ctx, cancel: cancel,
		// Every line of a session names the browser, so that a session
		// needs no line of its own when it opens (one line fewer per search).
		log:   srv.log.With(zap.String("session", id), zap.String("remote", remote)),
		tasks: make(map[int64]*task), openedAt: time.Now(),
	}
}

// post hands an event to the loop; dropped once the session has ended.
func (s *session) post(ev any) {
	select {
	case s.events <- ev:
	case <-s.done:
	}
}

// run serves the connection until the session ends.
func (s *session) run() {
	readerDone, writerDone := make(chan struct{}), make(chan struct{})
	go s.readLoop(readerDone)
	go func() {
		defer close(writerDone)
		writeLoop(s.conn, s.out, readerDone)
	}()
	s.loop()
	if !s.finished.IsZero() {
		// Written here rather than in the loop: the loop's stack is at its
		// deepest where a search ends, and encoding a line there made Go
		// grow it, a copy per session (3% of the server's CPU).
		s.log.Info("session done", zap.ByteString("params", s.params), zap.Int("suppliers", s.nTasks), zap.Int("items", s.nItems),
			zap.Int("failed", s.nFailed), zap.Duration("took", s.finished.Sub(s.openedAt)))
	}
	<-writerDone // the close frame is out (or the socket is dead)
}

// readLoop is the connection's only reader.
func (s *session) readLoop(done chan<- struct{}) {
	defer close(done)
	c := s.conn
	c.SetReadLimit(s.srv.cfg.MaxRequestSize)
	_ = c.SetReadDeadline(time.Now().Add(pongWait))
	c.SetPongHandler(func(string) error { return c.SetReadDeadline(time.Now().Add(pongWait)) })
	for {
		mt, data, err := c.ReadMessage()
		if err != nil {
			s.post(evGone{err})
			return
		}
		_ = c.SetReadDeadline(time.Now().Add(pongWait))
		if mt == websocket.TextMessage && !utf8.Valid(data) {
			// Reading goes on, so the browser's answer to our close
			// frame ends the connection cleanly.
			s.post(evBadUTF8{})
			continue
		}
		s.post(evMessage{data})
	}
}

// maxBatchEvents is how many events a session handles at most before the
// writer takes their messages.
const maxBatchEvents = 8

// loop is the session's state machine.
func (s *session) loop() {
	defer close(s.done)
	defer s.recoverBug()
	timer := time.NewTimer(s.srv.cfg.SessionTimeout)
	defer timer.Stop()
	batched := 0 // events handled since the writer was last woken
	for !s.ended {
		// The writer is woken once the events waiting are handled (at
		// most maxBatchEvents of them), so that their messages leave
		// together: at 2,000 searches/s results of several suppliers
		// often wait here at once.
		if batched > 0 && (len(s.events) == 0 || batched >= maxBatchEvents) {
			s.out.signal()
			batched = 0
		}
		batched++
		select {
		case ev := <-s.events:
			switch ev := ev.(type) {
			case evMessage:
				s.onMessage(ev.data)
			case evBadUTF8:
				// RFC 6455 §8.1: a text frame that is not UTF-8 fails the
				// connection with 1007. Processing it would echo the bytes
				// in _params, an invalid frame that kills a browser's socket.
				s.log.Warn("text frame is not UTF-8, closed with 1007", zap.Int("tasks_left", len(s.tasks)))
				s.end(websocket.CloseInvalidFramePayloadData, "invalid UTF-8", EndBadUTF8)
			case evTaskDone:
				s.onTaskDone(ev)
			case evGone:
				s.onGone(ev.err)
			}
		case <-timer.C:
			if s.echo {
				s.log.Info("echo session time is up")
				s.end(websocket.CloseNormalClosure, "time is up", EndTimeout)
				continue
			}
			s.log.Warn("session timed out", zap.String("code", string(aggregator.ESessionTimeout)), zap.ByteString("params", s.params),
				zap.Int("tasks_left", len(s.tasks)))
			s.send(head{Session: s.id, Task: TaskSession, Status: StatusError, Error: aggregator.ESessionTimeout, Params: s.params})
			s.end(websocket.CloseInternalServerErr, "session timeout", EndTimeout)
		case <-s.srv.ctx.Done():
			s.end(websocket.CloseGoingAway, "server shutdown", EndShutdown)
		}
	}
}

// recoverBug turns a panic in the session's code into E_UNKNOWN for this
// browser (SPEC §5: rather than silence) and a logged stack, instead of a
// crash of the whole server.
func (s *session) recoverBug() {
	r := recover()
	if r == nil {
		return
	}
	s.log.Error("bug: session failed", zap.Any("panic", r), zap.Stack("stack"))
	if !s.ended {
		s.send(head{Session: s.id, Task: TaskSession, Status: StatusError, Error: aggregator.EUnknown, Params: s.params})
		s.end(websocket.CloseInternalServerErr, "internal error", EndBug)
	}
}

// onMessage handles the browser's request (or a second one).
func (s *session) onMessage(data []byte) {
	if s.echo {
		s.sendRaw(data)
		return
	}
	if s.started {
		s.log.Info("second request on one socket", zap.String("code", string(aggregator.ESessionReused)))
		s.send(head{Session: s.id, Task: TaskSession, Status: StatusError, Error: aggregator.ESessionReused, Params: s.params})
		return
	}
	s.started = true
	req, code, missing := parseRequest(data, s.srv.cfg.RequestFields, s.srv.cfg.FaultyFields)
	s.params = req.params
	if code != "" {
		s.log.Info("bad request", zap.String("code", string(code)), zap.Int("bytes", len(data)),
			zap.Strings("missing", missing))
		s.send(head{Session: s.id, Task: TaskSession, Status: StatusError, Error: code, Params: s.params})
		s.end(websocket.ClosePolicyViolation, string(code), EndBadRequest)
		return
	}
	// The search is logged at INFO when it ends ("session done", with
	// these params): one line per search.
	s.log.Debug("search", zap.ByteString("params", s.params))
	s.addTask(aggregator.Suppliers, req.input, nil, "")
}

// request is a browser's parsed search request.
type request struct {
	input  []byte          // the suppliers script's input
	params json.RawMessage // the faulty fields, echoed as _params
}

// parseRequest validates a request (SPEC §3 step 2) and builds the suppliers
// input: the required fields at top level and again under "params", because
// scripts of the first implementation read them there.
func parseRequest(data []byte, required, faulty []string) (request, aggregator.Code, []string) {
	var r request
	fields, err := parseObject(data)
	if err != nil {
		return r, aggregator.ERequestJSON, nil
	}
	r.params = pick(fields, faulty)
	allowed := make([]field, 0, len(required)+1)
	var missing []string
	for _, k := range required {
		v := lookup(fields, k)
		if v == nil || string(v) == "null" {
			missing = append(missing, k)
			continue
		}
		allowed = append(allowed, keyField(k, v))
	}
	if len(missing) > 0 {
		return r, aggregator.EIllegalRequest, missing
	}
	r.input = encodeFields(append(allowed, keyField("params", encodeFields(allowed))))
	return r, "", nil
}

// addTask queues a task; items tasks announce themselves with PENDING.
func (s *session) addTask(kind aggregator.Kind, input []byte, info json.RawMessage, class string) {
	t := &task{id: s.srv.taskSeq.Add(1), sess: s, kind: kind, input: input, info: info, class: class,
		queuedAt: time.Now()}
	t.ctx, t.cancel = context.WithDeadline(s.ctx, t.queuedAt.Add(s.srv.cfg.ScriptTimeout))
	s.tasks[t.id] = t
	s.srv.stats.taskAdded()
	if kind == aggregator.Items {
		s.send(head{Session: s.id, Task: TaskItems, ID: t.id, Status: StatusPending, Info: info})
	}
	if kind == aggregator.Items && s.nTasks >= s.srv.cfg.MaxSessionTasks {
		s.srv.metrics.limitHit(aggregator.LimitSessionTasks)
		s.log.Warn("too many tasks in one session, cancelling", zap.Int64("task", t.id),
			zap.Int("limit", s.srv.cfg.MaxSessionTasks))
		s.fail(t, aggregator.EScriptCancelled)
		return
	}
	if kind == aggregator.Items {
		s.nTasks++
	}
	s.log.Debug("task queued", zap.Int64("task", t.id), zap.String("kind", kind.String()),
		zap.String("class", class), zap.Int("input_bytes", len(input)))
	if !s.srv.queue.push(t) {
		return // started at once: its runner sees its time run out
	}
	// A task whose time runs out while it waits is taken out and cancelled.
	// endTask and end stop this watch, so a task ending otherwise costs no
	// goroutine and no queue lock. It is set up only for a task that waits
	// (most start at once): it cannot end before this, as tasks end on
	// this goroutine, and if it has started meanwhile remove says so.
	t.stopWait = context.AfterFunc(t.ctx, func() {
		if s.srv.queue.remove(t) {
			s.post(evTaskDone{t: t, err: aggregator.Errorf(aggregator.EScriptCancelled, "its time ran out in the queue")})
		}
	})
}

// onTaskDone turns a finished PHP call into messages and new tasks.
func (s *session) onTaskDone(ev evTaskDone) {
	t := ev.t
	if _, live := s.tasks[t.id]; !live {
		return
	}
	// The task's logger is made only for a line that is written: a task
	// that succeeds logs nothing at INFO.
	log := func() *zap.Logger {
		return s.log.With(zap.Int64("task", t.id), zap.String("kind", t.kind.String()), zap.String("class", t.class))
	}
	if ev.err != nil {
		code := aggregator.ErrorCode(ev.err)
		lvl := zap.WarnLevel
		fields := []zap.Field{zap.String("code", string(code)), zap.String("error", aggregator.ErrorMessage(ev.err)),
			zap.Int("pid", ev.res.PID), zap.Duration("took", time.Since(t.queuedAt))}
		switch code {
		case aggregator.EScriptCancelled:
			lvl = zap.InfoLevel
		case aggregator.EScriptTimeout:
			lvl = zap.InfoLevel
			fields = append(fields, zap.String("limit", "aggregator.timeout.script="+s.srv.cfg.ScriptTimeout.String()))
		}
		log().Log(lvl, "task failed", fields...)
		if limit := aggregator.LimitHit(ev.err); limit != "" {
			s.srv.metrics.limitHit(limit)
		}
		s.failWith(t, code, aggregator.PublicMessage(ev.err))
		s.maybeFinish()
		return
	}
	out, code, err := checkOutput(t.kind, ev.res.Output, s.srv.cfg.ItemsField, s.srv.cfg.SuppliersField)
	if err != nil {
		log().Warn("bad "+t.kind.String()+" output", zap.String("code", string(code)), zap.Error(err),
			zap.ByteString("output", clip(ev.res.Output)))
		s.fail(t, code)
		s.maybeFinish()
		return
	}
	if ce := s.log.Check(zap.DebugLevel, "task succeeded"); ce != nil {
		ce.Write(zap.Int64("task", t.id), zap.String("kind", t.kind.String()), zap.String("class", t.class),
			zap.Int("pid", ev.res.PID), zap.Int("items", len(out.Items)), zap.Int("suppliers", len(out.Suppliers)),
			zap.Duration("ran", ev.res.Duration), zap.Duration("took", time.Since(t.queuedAt)))
	}
	if len(out.Items) > 0 {
		// The head is the same for each item: encoded once, without its
		// '{'. The task's messages share one buffer.
		tail := head{Session: s.id, Task: TaskItems, ID: t.id, Status: StatusSending, Info: t.info}.encode()[1:]
		size := 0
		for _, item := range out.Items {
			size += itemMessageSize(item, tail)
		}
		buf := make([]byte, 0, size)
		for _, item := range out.Items {
			start := len(buf)
			buf = appendItemMessage(buf, item, tail)
			if !s.sendRaw(buf[start:len(buf):len(buf)]) {
				return
			}
		}
	}
	s.nItems += len(out.Items)
	s.succeed(t, t.kind == aggregator.Items)
	s.addSuppliers(out.Suppliers)
	s.maybeFinish()
}

// addSuppliers makes an items task of each supplier element.
func (s *session) addSuppliers(elems [][]field) {
	for _, e := range elems {
		if s.ended {
			return
		}
		input, class, info := itemsTask(e, s.srv.cfg.InfoField)
		s.addTask(aggregator.Items, input, info, class)
	}
}

// succeed ends a task well.
func (s *session) succeed(t *task, announce bool) {
	if announce {
		s.send(head{Session: s.id, Task: TaskItems, ID: t.id, Status: StatusSuccess, Info: t.info})
	}
	s.endTask(t, OutcomeSuccess)
}

// fail ends a task with an error message to the browser.
func (s *session) fail(t *task, code aggregator.Code) { s.failWith(t, code, "") }

// failWith ends a task with an error message carrying public, the text of
// a PublicError the handler threw, as _message (SPEC §15).
func (s *session) failWith(t *task, code aggregator.Code, public string) {
	h := head{Session: s.id, Task: t.name(), ID: t.id, Status: StatusError, Error: code, Message: public, Params: s.params}
	if t.kind == aggregator.Items {
		h.Info = t.info
	}
	s.send(h)
	s.nFailed++
	s.endTask(t, failure(code))
}

// endTask records a task's end exactly once.
func (s *session) endTask(t *task, outcome Outcome) {
	if _, live := s.tasks[t.id]; !live {
		return
	}
	delete(s.tasks, t.id)
	t.unwatch()
	t.cancel()
	s.srv.stats.taskEnded(outcome == OutcomeSuccess)
	s.srv.metrics.tasksTotal.WithLabelValues(t.kind.String(), string(outcome)).Inc()
	s.srv.metrics.taskDuration.WithLabelValues(t.kind.String()).Observe(time.Since(t.queuedAt).Seconds())
}

// maybeFinish closes the session normally once no task is left.
func (s *session) maybeFinish() {
	if !s.ended && s.started && len(s.tasks) == 0 {
		s.finished = time.Now() // logged by run, once the loop has returned
		s.end(websocket.CloseNormalClosure, "", EndDone)
	}
}

// onGone handles the browser leaving.
func (s *session) onGone(err error) {
	if errors.Is(err, websocket.ErrReadLimit) {
		s.srv.metrics.limitHit(aggregator.LimitRequestSize)
		s.log.Warn("request too large, closed with 1009", zap.Int64("limit", s.srv.cfg.MaxRequestSize))
		s.end(websocket.CloseMessageTooBig, "", EndTooLarge)
		return
	}
	s.log.Info("browser closed the socket", zap.String("code", string(aggregator.ESessionClosed)), zap.ByteString("params", s.params),
		zap.Int("tasks_left", len(s.tasks)), zap.String("reason", err.Error()))
	s.end(websocket.CloseNormalClosure, "", EndClosed)
}

// send queues a message; a browser too slow to take it ends the session.
func (s *session) send(h head) { s.sendRaw(h.encode()) }

func (s *session) sendRaw(m []byte) bool {
	if s.ended {
		return false
	}
	// Every part of a message is valid UTF-8 already (requests are
	// checked, PHP's answers repaired, strings encoded by encoding/json);
	// this is the last guard, as an invalid text frame kills the socket.
	m = validUTF8(m)
	if full := s.out.push(m); full != "" {
		s.srv.metrics.limitHit(full)
		n, bytes := s.out.queued()
		limit := fmt.Sprintf("aggregator.limit.send-queue=%d", s.srv.cfg.SendQueue)
		if full == fullBytes {
			limit = fmt.Sprintf("aggregator.limit.send-queue-bytes=%d", s.srv.cfg.SendQueueBytes)
		}
		s.log.Warn("browser does not read: send queue full, closing", zap.String("limit", limit),
			zap.Int("queued", n), zap.Int("queued_bytes", bytes), zap.Int("message_bytes", len(m)))
		s.end(websocket.ClosePolicyViolation, "send queue full", EndSlowClient)
		return false
	}
	s.srv.metrics.messagesSent.Inc()
	return true
}

// end finishes the session with a close frame (closeCode, text): its
// waiting tasks are dropped, its running PHP is killed, and each task left
// is counted once, with the outcome why leaves it.
func (s *session) end(closeCode int, text string, why Ending) {
	if s.ended {
		return
	}
	s.ended = true
	outcome := why.left()
	for _, t := range s.tasks {
		t.unwatch()
		s.srv.queue.remove(t)
	}
	s.cancel() // kills the session's running scripts
	debug := s.log.Core().Enabled(zap.DebugLevel)
	for _, t := range s.tasks {
		if debug {
			s.log.Debug("task dropped", zap.Int64("task", t.id), zap.String("class", t.class),
				zap.String("outcome", string(outcome)), zap.Duration("took", time.Since(t.queuedAt)))
		}
		s.endTask(t, outcome)
	}
	s.out.close(closeCode, text)
	s.srv.sessionEnded(why)
}

// clip shortens script output for a log line.
func clip(b []byte) []byte {
	const max = 512
	if len(b) > max {
		return b[:max]
	}
	return b
}

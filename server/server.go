// Package server is the websocket aggregator: sessions, the fair task queue,
// messages to the browser, /stats, /metrics, /health and the demo page.
package server

import (
	"context"
	"encoding/json"
	"io/fs"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/theaspect/aggregator"
	"go.uber.org/zap"
)

// Config is what the server needs. A field tagged with a key is that
// configuration key (cmd/aggregator decodes the tags; doc is its row in
// docs/configuration.md); the others are filled by whoever starts the
// server.
type Config struct {
	// The fields of requests and answers (SPEC §3, §4).
	RequestFields  []string `key:"aggregator.fields.request" default:"code,brand,apikey,analog" doc:"required request fields, passed to the suppliers handler"`
	ItemsField     string   `key:"aggregator.fields.items" default:"items" doc:"the items array's field"`
	SuppliersField string   `key:"aggregator.fields.suppliers" default:"suppliers" doc:"the suppliers array's field"`
	InfoField      string   `key:"aggregator.fields.info" default:"info" doc:"the supplier field echoed as '_info'"`
	FaultyFields   []string `key:"aggregator.fields.faulty" default:"code,brand,analog" doc:"request fields echoed in errors as '_params'"`

	// ScriptTimeout bounds one task, counted from queueing.
	ScriptTimeout  time.Duration `key:"aggregator.timeout.script" default:"5" doc:"seconds for one task, counted from queueing (decimals allowed)"`
	SessionTimeout time.Duration `key:"aggregator.timeout.session" default:"30" doc:"seconds for one session"`

	Capacity int // tasks running at once (PHP processes × jobs each)
	// SessionLimit is how many tasks of one session run at once.
	SessionLimit int `key:"aggregator.pool.session-limit" min:"0" default:"0" doc:"tasks of one session running at once (fairness); '0' = ¼ of the capacity, at least 4"`

	// The protective limits (SPEC §13).
	MaxSessions     int   `key:"aggregator.limit.sessions" min:"0" default:"0" doc:"concurrent sessions ('/ws' and '/echo'); past it the upgrade gets HTTP 503; '0' = 20000, or one per connection 'aggregator.limit.connections' allows when that is fewer (the start's log says so at INFO)"`
	MaxRequestSize  int64 `key:"aggregator.limit.request-size" min:"2" default:"65536" doc:"bytes of one browser message; past it close 1009"`
	MaxSessionTasks int   `key:"aggregator.limit.session-tasks" min:"1" default:"10000" doc:"items tasks in one session; extra ones end 'E_SCRIPT_CANCELLED'"`
	// SendQueue and SendQueueBytes bound what is queued for one browser
	// (one message is always admitted).
	SendQueue      int `key:"aggregator.limit.send-queue" min:"1" default:"100000" doc:"messages queued for one browser; a browser that does not read is closed (1008)"`
	SendQueueBytes int `key:"aggregator.limit.send-queue-bytes" min:"0" default:"0" doc:"bytes queued for one browser; past it the session is closed (1008); one message always fits; '0' = 2 × 'aggregator.limit.output-size', else at least that size"`

	// AllowedOrigins: empty is the same host only; "*" any.
	AllowedOrigins []string     `key:"aggregator.ws.allowed-origins" default:"" doc:"comma-separated origins allowed to open '/ws' besides the page's own host ('*' = any); empty = same host only"`
	TrustedProxies []*net.IPNet `key:"server.trusted-proxies" default:"127.0.0.1,::1" doc:"IPs/CIDRs whose 'X-Forwarded-For' / 'X-Forwarded-Host' are believed"`
	Pprof          bool         `key:"aggregator.ops.pprof" default:"false" doc:"serve '/debug/pprof/' with the operators' endpoints"`

	// UntilWarm refuses new sessions (503) until PHP has run once (drain.go).
	UntilWarm bool `key:"aggregator.drain.until-warm" default:"false" doc:"'true': refuse new sessions with HTTP 503 (which nginx retries on another instance) until PHP has first run, so a restarted instance, or one whose release cannot start, takes none; the instances' unit 'aggregator@.service' sets it. Alone, keep 'false': searches then wait for the workers, or fail 'E_SCRIPT_START' when they cannot start ([operating.md](operating.md#deploys-without-a-gap-two-instances-behind-nginx))"`

	Static fs.FS  // the demo page
	Mode   string // worker or exec, for /workers
	// HealthChecks add to the runner's health in /health (the log file, ...).
	HealthChecks []func() aggregator.Health
}

// Server serves the websocket sessions and the monitoring endpoints.
type Server struct {
	cfg        Config
	runner     aggregator.Runner  // the sessions' tasks run on it
	monitor    aggregator.Monitor // /health and /workers read it
	log        *zap.Logger
	registry   *prometheus.Registry
	stats      *Stats
	metrics    *metrics
	queue      *queue
	upgrader   websocket.Upgrader
	ctx        context.Context // ends on Shutdown: every session closes with 1001
	cancel     context.CancelFunc
	sessionSeq atomic.Int64
	taskSeq    atomic.Int64
	alive      atomic.Int64
	mu         sync.Mutex        // orders sessions.Add against Shutdown's cancel
	sessions   sync.WaitGroup    // running sessions; Add only under mu, before cancel
	runners    *spares[*session] // goroutines that run sessions
	drain      *drainState       // refusing new sessions before a restart (drain.go)
}

// PHP is what the server needs of the PHP runner: Run for the sessions'
// tasks, Health and Info for the operators' endpoints.
type PHP interface {
	aggregator.Runner
	aggregator.Monitor
}

// New builds a server around php. reg receives the server's metrics.
func New(cfg Config, php PHP, log *zap.Logger, reg *prometheus.Registry) *Server {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{cfg: cfg, runner: php, monitor: php, log: log, registry: reg, stats: newStats(), ctx: ctx, cancel: cancel}
	s.runners = newSpares(func(sess *session) { sess.run(); s.leave() })
	s.drain = newDrain(reg, log)
	s.queue = newQueue(cfg.Capacity, cfg.SessionLimit, s.runTask)
	s.metrics = newMetrics(reg, s.queue)
	s.upgrader = websocket.Upgrader{
		// Requests are small; write buffers are shared between connections
		// while they are idle, so 10,000 waiting sessions stay cheap.
		ReadBufferSize:  1024,
		WriteBufferSize: 4096,
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     s.checkOrigin,
	}
	return s
}

// Stats returns the server's counters.
func (s *Server) Stats() *Stats { return s.stats }

// Handler routes the main port: the public endpoints, and the operators'
// ones (/workers, /metrics, /debug/pprof/) for local clients only (see
// localOnly). They are registered as handlers, not matched as paths in
// front, so every spelling that reaches one (/%6Detrics, //metrics) meets
// the guard.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", s.serveWS)
	mux.HandleFunc("/echo", s.serveEcho)
	mux.HandleFunc("/stats", s.serveStats)
	mux.HandleFunc("/health", s.serveHealth)
	s.opsRoutes(mux, s.localOnly)
	if s.cfg.Static != nil {
		mux.Handle("/", http.FileServerFS(s.cfg.Static))
	}
	return mux
}

// OpsHandler routes the operators' listener (aggregator.ops.port): the
// operators' endpoints, /health and /stats, without the loopback guard:
// the listener's address is its guard.
func (s *Server) OpsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/stats", s.serveStats)
	mux.HandleFunc("/health", s.serveHealth)
	s.opsRoutes(mux, func(h http.Handler) http.Handler { return h })
	return mux
}

// opsRoutes registers the operators' endpoints, each wrapped by guard.
func (s *Server) opsRoutes(mux *http.ServeMux, guard func(http.Handler) http.Handler) {
	mux.Handle("/workers", guard(http.HandlerFunc(s.serveWorkers)))
	mux.Handle("/metrics", guard(promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{})))
	if s.cfg.Pprof {
		mux.Handle("/debug/pprof/", guard(http.HandlerFunc(pprof.Index))) // and the named profiles
		mux.Handle("/debug/pprof/cmdline", guard(http.HandlerFunc(pprof.Cmdline)))
		mux.Handle("/debug/pprof/profile", guard(http.HandlerFunc(pprof.Profile)))
		mux.Handle("/debug/pprof/symbol", guard(http.HandlerFunc(pprof.Symbol)))
		mux.Handle("/debug/pprof/trace", guard(http.HandlerFunc(pprof.Trace)))
	}
}

// localOnly lets a request through only from a loopback peer that came
// without proxy headers: a local operator, Prometheus or `aggregator
// workers`, never a client through a proxy on this host (the shipped
// nginx sets X-Forwarded-For and X-Real-IP on every location), nor a
// remote peer when server.address is not local. Others get 403.
func (s *Server) localOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !loopback(r.RemoteAddr) || proxied(r.Header) {
			s.metrics.opsRefused.Inc()
			http.Error(w, "forbidden: an operators' endpoint, answered on this port to local clients only "+
				"(or on aggregator.ops.port)", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// loopback says whether addr (host:port) is a loopback address.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// proxied says whether a request carries any header a proxy adds.
func proxied(h http.Header) bool {
	for k := range h {
		if strings.HasPrefix(k, "X-Forwarded-") || k == "X-Real-Ip" || k == "Forwarded" || k == "Via" {
			return true
		}
	}
	return false
}

// runTask runs a started task's PHP call and reports its end to the session.
func (s *Server) runTask(t *task) {
	job := &aggregator.Job{Kind: t.kind, Input: t.input, Session: t.sess.id, Task: t.id, Class: t.class}
	if ce := s.log.Check(zap.DebugLevel, "task started"); ce != nil {
		ce.Write(zap.String("session", t.sess.id), zap.Int64("task", t.id),
			zap.Duration("waited", time.Since(t.queuedAt)))
	}
	var res aggregator.Result
	var err error
	defer func() {
		// A bug in a runner must end this task with E_UNKNOWN, not the server.
		if r := recover(); r != nil {
			s.log.Error("bug: task failed", zap.String("session", t.sess.id), zap.Int64("task", t.id),
				zap.Any("panic", r), zap.Stack("stack"))
			err = aggregator.Errorf(aggregator.EUnknown, "panic: %v", r)
		}
		s.queue.done(t)
		t.sess.post(evTaskDone{t: t, res: res, err: err})
	}()
	if t.ctx.Err() != nil {
		err = aggregator.Errorf(aggregator.EScriptCancelled, "its time ran out as it left the queue")
		return
	}
	res, err = s.runner.Run(t.ctx, job)
}

// serveWS upgrades the connection and runs its search session.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) { s.serveSession(w, r, false) }

// serveEcho is the first implementation's proof of concept, kept for the
// demo page: a session that sends each text message back. It is bounded
// like a search: it counts against aggregator.limit.sessions and in /stats,
// has the same read limit, pings, send queue and UTF-8 check, lasts at
// most aggregator.timeout.session, and gets 1001 on shutdown.
func (s *Server) serveEcho(w http.ResponseWriter, r *http.Request) { s.serveSession(w, r, true) }

// serveSession upgrades the connection and runs its session.
func (s *Server) serveSession(w http.ResponseWriter, r *http.Request, echo bool) {
	if why := s.enter(); why != admitted {
		s.refuse(w, why)
		return
	}
	remote := s.clientAddr(r)
	if n := s.alive.Add(1); s.cfg.MaxSessions > 0 && n > int64(s.cfg.MaxSessions) {
		s.leave()
		s.alive.Add(-1)
		s.metrics.sessionsRejected.Inc()
		s.metrics.limitHit(aggregator.LimitSessions)
		s.log.Warn("too many sessions, refusing", zap.Int("limit", s.cfg.MaxSessions),
			zap.String("remote", remote))
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many sessions", http.StatusServiceUnavailable)
		return
	}
	conn, err := s.upgrade(w, r)
	if err != nil {
		s.leave()
		s.alive.Add(-1)
		s.log.Info("websocket upgrade failed", zap.Error(err), zap.String("remote", remote))
		return
	}
	sess := newSession(s, conn, echo, remote)
	s.stats.sessionStarted()
	s.metrics.sessionsTotal.Inc()
	s.metrics.sessionsAlive.Inc()
	if ce := sess.log.Check(zap.DebugLevel, "session opened"); ce != nil {
		ce.Write(zap.String("origin", r.Header.Get("Origin")), zap.String("path", r.URL.Path))
	}
	// The connection is hijacked: net/http is done with it, and the
	// session runs on a goroutine of its own, reused.
	s.runners.launch(sess)
}

// enter counts a session in, unless the server is shutting down, draining
// or not warm yet (drain.go): a session counted is one Shutdown waits for
// and a drain waits out; leave counts it out.
func (s *Server) enter() admission {
	if why := s.coldGate(); why != admitted {
		return why
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if why := s.admit(); why != admitted {
		return why
	}
	s.sessions.Add(1)
	s.drain.open.Add(1)
	return admitted
}

// sessionEnded is called once by each session's loop as it ends.
func (s *Server) sessionEnded(why Ending) {
	s.alive.Add(-1)
	s.stats.sessionEnded()
	s.metrics.sessionsAlive.Dec()
	s.metrics.sessionsEnded.WithLabelValues(string(why)).Inc()
}

// pick returns the request's fields named in keys as an object, or nil.
func pick(fields []field, keys []string) json.RawMessage {
	var out []field
	for _, k := range keys {
		if v := lookup(fields, k); v != nil {
			out = append(out, keyField(k, v))
		}
	}
	if out == nil {
		return nil
	}
	return encodeFields(out)
}

func (s *Server) serveStats(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.stats.Snapshot())
}

// serveHealth answers 200 when PHP can run, else 503 with the reason.
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	if s.ctx.Err() != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "down", "reason": "shutting down"})
		return
	}
	if s.serveDrainHealth(w) {
		return
	}
	h := s.monitor.Health()
	for _, check := range s.cfg.HealthChecks {
		h = h.Worse(check())
	}
	status := http.StatusOK
	if h.Status == aggregator.HealthDown {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, h)
}

// serveWorkers lists the PHP processes and what they run.
func (s *Server) serveWorkers(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"mode": s.cfg.Mode, "workers": s.monitor.Info()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// checkOrigin lets browsers of the same host (or of the configured origins)
// open sessions, so another site cannot use a visitor's browser. Clients
// that send no Origin (not browsers) are let in.
func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	for _, o := range s.cfg.AllowedOrigins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	host := r.Host
	if fwd := r.Header.Get("X-Forwarded-Host"); fwd != "" && s.trusted(r.RemoteAddr) {
		host = fwd
	}
	return strings.EqualFold(u.Host, host)
}

// clientAddr is the browser's address: X-Forwarded-For is believed only
// when the connection comes from a trusted proxy.
func (s *Server) clientAddr(r *http.Request) string {
	if !s.trusted(r.RemoteAddr) {
		return r.RemoteAddr
	}
	xff := r.Header.Get("X-Forwarded-For")
	if xff == "" {
		return r.RemoteAddr
	}
	hops := strings.Split(xff, ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		if i == 0 || !s.trusted(hop) {
			return hop
		}
	}
	return r.RemoteAddr
}

func (s *Server) trusted(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	for _, n := range s.cfg.TrustedProxies {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// Shutdown closes every session with 1001 and waits for them (at most until
// ctx ends). Running PHP is killed by the sessions' ends; the caller closes
// the runner afterwards.
func (s *Server) Shutdown(ctx context.Context) {
	s.mu.Lock()
	s.cancel()
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.sessions.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

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

// Config is what the server needs; main fills it from the properties.
type Config struct {
	RequestFields   []string // required request fields, passed to the suppliers script
	FaultyFields    []string // request fields echoed in errors as _params
	ItemsField      string
	SuppliersField  string
	InfoField       string
	ScriptTimeout   time.Duration // one task, counted from queueing
	SessionTimeout  time.Duration
	Capacity        int // tasks running at once (PHP processes × jobs each)
	SessionLimit    int // tasks of one session running at once
	MaxSessions     int
	MaxRequestSize  int64
	MaxSessionTasks int
	SendQueue       int      // messages queued for one browser
	SendQueueBytes  int      // bytes queued for one browser (one message is always admitted)
	AllowedOrigins  []string // empty: same host only; "*": any
	TrustedProxies  []*net.IPNet
	Static          fs.FS  // the demo page
	Mode            string // worker or exec, for /workers
	Pprof           bool   // serve /debug/pprof/ with the operators' endpoints
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
	s.runners = newSpares(func(sess *session) { sess.run(); s.sessions.Done() })
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
	if !s.enter() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	remote := s.clientAddr(r)
	if n := s.alive.Add(1); s.cfg.MaxSessions > 0 && n > int64(s.cfg.MaxSessions) {
		s.sessions.Done()
		s.alive.Add(-1)
		s.metrics.sessionsRejected.Inc()
		s.metrics.limitHits.WithLabelValues("sessions").Inc()
		s.log.Warn("too many sessions, refusing", zap.Int("limit", s.cfg.MaxSessions),
			zap.String("remote", remote))
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many sessions", http.StatusServiceUnavailable)
		return
	}
	conn, err := s.upgrade(w, r)
	if err != nil {
		s.sessions.Done()
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

// enter counts a session in, unless the server is shutting down: a session
// counted is one Shutdown waits for.
func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return false
	}
	s.sessions.Add(1)
	return true
}

// sessionEnded is called once by each session's loop as it ends.
func (s *Server) sessionEnded(reason string) {
	s.alive.Add(-1)
	s.stats.sessionEnded()
	s.metrics.sessionsAlive.Dec()
	s.metrics.sessionsEnded.WithLabelValues(reason).Inc()
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

package server

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/theaspect/aggregator"
	"go.uber.org/zap"
)

// Draining (SPEC §11): before a deploy restarts an instance behind nginx,
// the instance stops taking new sessions while those it runs go on to
// their normal end. A new /ws or /echo upgrade is answered 503 before the
// upgrade, which nginx (proxy_next_upstream http_503) retries on another
// instance without the browser noticing; /health answers 503 "draining"
// with the number of sessions still open, and the instance logs "drained"
// when none is left, so aggregatorctl restarts it exactly when nothing
// can be lost. A stop (SIGTERM) is unchanged: it closes what is left 1001.
//
// The same refusal holds a fresh instance back until its PHP first runs
// (Config.UntilWarm): restarted on a release whose PHP cannot start, it
// takes no session that would fail E_SCRIPT_START, nginx sends them to
// the instances still on the previous release, and the deploy rolls back.

// healthDraining is /health's status while draining. The runners never
// report it (it is not among aggregator's health states): only the server
// drains.
const healthDraining aggregator.HealthStatus = "draining"

// drainRetryAfter is the Retry-After of a refusal, for clients that come
// without nginx: a draining instance goes away within a session's time,
// one that is warming up is ready within about a second.
const drainRetryAfter = "1"

// admission is whether a new session may start, and if not, why.
type admission int

const (
	admitted admission = iota
	refusedShutdown
	refusedDraining
	refusedCold // Config.UntilWarm and PHP has not run yet
)

// drainState is the server's draining state. on changes under Server.mu, the
// lock that orders enter's count against it, so once Drain returns no
// session is counted in any more and open only goes down.
type drainState struct {
	on       atomic.Bool
	since    atomic.Int64 // unix nanoseconds the drain began
	reported atomic.Bool  // "drained" was logged for this drain
	warm     atomic.Bool  // PHP has been healthy once (Config.UntilWarm)
	// open counts the sessions entered and not finished: counted in with
	// sessions.Add, out once the session's run returned (its close frame
	// written), so 0 means a restart cuts nothing.
	open    atomic.Int64
	refused atomic.Int64 // refused while draining, for the "drained" line

	gauge       prometheus.Gauge
	refusedBy   *prometheus.CounterVec
	drainedLine func(took time.Duration, refused int64)
}

func newDrain(reg prometheus.Registerer, log *zap.Logger) *drainState {
	d := &drainState{
		gauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aggregator_draining", Help: "1 while the instance drains (SIGUSR2): new sessions refused, running ones go on."}),
		refusedBy: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aggregator_sessions_refused_total",
			Help: "Websocket upgrades answered 503 before the upgrade, by reason (draining, not_warm, shutdown).",
		}, []string{"reason"}),
		drainedLine: func(took time.Duration, refused int64) {
			log.Info("drained: no session left, the instance can be restarted without cutting one",
				zap.Duration("took", took), zap.Int64("refused", refused))
		},
	}
	reg.MustRegister(d.gauge, d.refusedBy)
	return d
}

// Drain stops taking new sessions; those running go on to their end.
// When none is left the log says "drained" and /health's "sessions" is 0.
// Draining again changes nothing.
func (s *Server) Drain() {
	s.mu.Lock()
	again := s.drain.on.Load()
	if !again {
		s.drain.since.Store(time.Now().UnixNano())
		s.drain.refused.Store(0)
		s.drain.reported.Store(false)
		s.drain.on.Store(true)
	}
	s.mu.Unlock()
	open := s.drain.open.Load()
	if again {
		s.log.Info("already draining", zap.Int64("sessions", open))
	} else {
		s.drain.gauge.Set(1)
		s.log.Info("draining: new sessions are refused with 503 (nginx sends them to another instance), the running ones go on to their end",
			zap.Int64("sessions", open))
	}
	if open == 0 {
		s.drained()
	}
}

// Resume takes new sessions again after a Drain.
func (s *Server) Resume() {
	s.mu.Lock()
	was := s.drain.on.Swap(false)
	s.mu.Unlock()
	if !was {
		s.log.Info("not draining: nothing to resume")
		return
	}
	s.drain.gauge.Set(0)
	s.log.Info("drain cancelled: taking new sessions again", zap.Int64("sessions", s.drain.open.Load()))
}

// Draining says whether the server drains, and how many sessions it still runs.
func (s *Server) Draining() (on bool, open int64) {
	return s.drain.on.Load(), s.drain.open.Load()
}

// admit says whether a new session may be counted in; s.mu is held.
func (s *Server) admit() admission {
	switch {
	case s.ctx.Err() != nil:
		return refusedShutdown
	case s.drain.on.Load():
		return refusedDraining
	}
	return admitted
}

// coldGate refuses sessions until PHP has run once, when Config.UntilWarm:
// the runner's health is asked until it is first up (not down), then
// never again, so a warm server pays one atomic load per session.
func (s *Server) coldGate() admission {
	if !s.cfg.UntilWarm || s.drain.warm.Load() {
		return admitted
	}
	if s.monitor.Health().Status == aggregator.HealthDown {
		return refusedCold
	}
	if s.drain.warm.CompareAndSwap(false, true) {
		s.log.Info("PHP is up: taking sessions (aggregator.drain.until-warm)")
	}
	return admitted
}

// leave counts a session out (its run returned, or it never started);
// the last one out of a drain reports it.
func (s *Server) leave() {
	if s.drain.open.Add(-1) == 0 && s.drain.on.Load() {
		s.drained()
	}
	s.sessions.Done()
}

// drained logs, once per drain, that no session is left. Both Drain and
// the last leave may get here; the flag keeps it to one line.
func (s *Server) drained() {
	if s.drain.reported.CompareAndSwap(false, true) {
		s.drain.drainedLine(time.Since(time.Unix(0, s.drain.since.Load())), s.drain.refused.Load())
	}
}

// refuse answers a session that may not start with 503, before the
// upgrade, so a proxy may retry it elsewhere.
func (s *Server) refuse(w http.ResponseWriter, why admission) {
	reason, text := "shutdown", "shutting down"
	switch why {
	case refusedDraining:
		reason, text = "draining", "draining: this instance takes no new session"
		s.drain.refused.Add(1)
	case refusedCold:
		reason, text = "not_warm", "starting: PHP is not running yet"
	}
	s.drain.refusedBy.WithLabelValues(reason).Inc()
	w.Header().Set("Retry-After", drainRetryAfter)
	http.Error(w, text, http.StatusServiceUnavailable)
}

// drainHealth is /health's answer while draining.
type drainHealth struct {
	Status   aggregator.HealthStatus `json:"status"`
	Reason   string                  `json:"reason"`
	Sessions int64                   `json:"sessions"` // still open; 0 = safe to restart
}

// serveDrainHealth answers /health while draining (503, so that a balancer
// that reads it sends nothing new) and says whether it did.
func (s *Server) serveDrainHealth(w http.ResponseWriter) bool {
	on, open := s.Draining()
	if !on {
		return false
	}
	took := time.Since(time.Unix(0, s.drain.since.Load())).Round(time.Second)
	reason := fmt.Sprintf("draining for %v (SIGUSR2): new sessions are refused, %d still running", took, open)
	if open == 0 {
		reason = fmt.Sprintf("drained: no session left (draining for %v, SIGUSR2): a restart cuts nothing", took)
	}
	writeJSON(w, http.StatusServiceUnavailable, drainHealth{Status: healthDraining, Reason: reason, Sessions: open})
	return true
}

package limit

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/theaspect/aggregator"
	"github.com/theaspect/aggregator/fetch"
	"go.uber.org/zap"
)

// Clock tells the time; tests pass a fake one.
type Clock interface{ Now() time.Time }

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// Options are a Limiter's collaborators.
type Options struct {
	Clock      Clock       // nil: the wall clock
	Logger     *zap.Logger // nil: no log
	Registerer prometheus.Registerer
}

// Limiter is the aggregator.Fetcher in front of the HTTP client that
// applies the supplier limits to every call. Safe for concurrent use.
type Limiter struct {
	next    aggregator.Fetcher
	clock   Clock
	log     *zap.Logger
	metrics *metrics

	mu        sync.Mutex
	shared    *shared // nil without Redis
	cfg       *resolved
	suppliers map[string]*supplier // by name; a host no supplier names is its own, by its key
	hosts     map[string]*host     // by key, "name:port"
	sweepAt   int                  // forgetIdle runs when a new host would pass this many
}

// maxHosts is how many hosts are remembered before a new one makes the
// limiter forget the idle ones, so that translators calling ever new hosts
// (a subdomain per customer) cannot grow it without end.
const maxHosts = 10_000

// supplier is one supplier's state: its policy and its quota's log.
type supplier struct {
	name   string
	named  bool
	policy policy
	log    callLog
}

// host is one host's state: its cap, its breaker, what it last failed
// with and how long it takes to answer.
type host struct {
	key       string
	supplier  *supplier
	gate      gate
	breaker   Breaker
	lastCause string
	lastAt    time.Time
	latency   latencies
}

// New returns a Limiter that sends the calls it lets through to next.
func New(next aggregator.Fetcher, cfg Config, opts Options) (*Limiter, error) {
	r, err := resolve(cfg)
	if err != nil {
		return nil, err
	}
	l := &Limiter{next: next, clock: opts.Clock, log: opts.Logger, metrics: newMetrics(opts.Registerer),
		cfg: r, suppliers: map[string]*supplier{}, hosts: map[string]*host{}, sweepAt: maxHosts}
	if l.clock == nil {
		l.clock = wallClock{}
	}
	if l.log == nil {
		l.log = zap.NewNop()
	}
	for name, p := range r.suppliers {
		l.suppliers[name] = &supplier{name: name, named: true, policy: p}
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(newHostGauges(l))
	}
	if r.redis.Address != "" {
		l.shared = newShared(r.redis, l.log, l.metrics.shared)
	}
	return l, nil
}

// Close closes the Redis connections.
func (l *Limiter) Close() error {
	if sh := l.sharedNow(); sh != nil {
		return sh.close()
	}
	return nil
}

// Update applies a new configuration (a reload). Suppliers and hosts that
// still exist keep their quota logs, breakers and calls in flight; the
// Redis connection is kept unless its settings changed.
func (l *Limiter) Update(cfg Config) error {
	r, err := resolve(cfg)
	if err != nil {
		return err
	}
	l.mu.Lock()
	old := l.cfg
	l.cfg = r
	for name, s := range l.suppliers {
		p, ok := r.suppliers[name]
		switch {
		case ok:
			s.policy = p
		case s.named || r.hosts.lookup(splitKey(name)) != "":
			delete(l.suppliers, name) // gone, or its host now belongs to a supplier
			l.metrics.forget(name)
		default:
			s.policy = r.def
		}
	}
	for name, p := range r.suppliers {
		if l.suppliers[name] == nil {
			l.suppliers[name] = &supplier{name: name, named: true, policy: p}
		}
	}
	for _, h := range l.hosts {
		h.supplier = l.supplierOf(h.key)
		h.breaker.configure(h.supplier.policy.breaker)
		h.gate.resize(h.supplier.policy.maxInFlight)
	}
	var closing *shared
	if old.redis != r.redis {
		closing, l.shared = l.shared, nil
		if r.redis.Address != "" {
			l.shared = newShared(r.redis, l.log, l.metrics.shared)
		}
	}
	l.mu.Unlock()
	if closing != nil {
		_ = closing.close()
	}
	return nil
}

// sharedNow is the quotas' Redis now (Update may change it), or nil.
func (l *Limiter) sharedNow() *shared {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.shared
}

// route is where a call goes: its host, its supplier and the supplier's
// policy as they were when the call began (a reload may change them meanwhile).
type route struct {
	h *host
	s *supplier
	p policy
}

// routeOf is u's route; its host's state is made on its first call.
func (l *Limiter) routeOf(u *url.URL) route {
	port := u.Port()
	if port == "" {
		port = "80"
		if strings.EqualFold(u.Scheme, "https") {
			port = "443"
		}
	}
	key := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".") + ":" + port
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.hosts[key]
	if h == nil {
		if len(l.hosts) >= l.sweepAt {
			l.forgetIdle()
		}
		h = &host{key: key, supplier: l.supplierOf(key)}
		h.breaker.configure(h.supplier.policy.breaker)
		h.gate.resize(h.supplier.policy.maxInFlight)
		l.hosts[key] = h
	}
	return route{h: h, s: h.supplier, p: h.supplier.policy}
}

// forgetIdle forgets the hosts that have nothing to remember: a closed breaker with no failure and no opening to
// decay, no call in flight or waiting, and, for a host that is its own
// supplier, no quota call in its window. If most
// hosts are busy, the next sweep waits until there are twice as many, so a
// sweep costs O(1) per new host amortised. l.mu is held.
func (l *Limiter) forgetIdle() {
	now := l.clock.Now()
	for key, h := range l.hosts {
		state, k, _ := h.breaker.State(now)
		active, waiting := h.gate.counts()
		s := h.supplier
		if state != Closed || k > 0 || h.breaker.failures > 0 || active+waiting > 0 || (!s.named && len(s.log.live()) > 0) {
			continue
		}
		delete(l.hosts, key)
		if !s.named { // a named supplier keeps its quota; "*.example.com" may have many hosts
			delete(l.suppliers, s.name)
			l.metrics.forget(s.name)
		}
	}
	l.sweepAt = max(maxHosts, 2*len(l.hosts))
}

// supplierOf is the supplier of a host key; l.mu is held.
func (l *Limiter) supplierOf(key string) *supplier {
	name := l.cfg.hosts.lookup(splitKey(key))
	if name == "" {
		name = key
	}
	s := l.suppliers[name]
	if s == nil {
		s = &supplier{name: name, policy: l.cfg.def}
		l.suppliers[name] = s
	}
	return s
}

func splitKey(key string) (string, string) {
	i := strings.LastIndexByte(key, ':')
	if i < 0 {
		return key, ""
	}
	return key[:i], key[i+1:]
}

// Fetch applies the limits to one call: its host's breaker, its supplier's
// quota, its host's cap, in that order (a call refused by one takes
// nothing from the next), then makes the call, hedged for an idempotent
// supplier, and tells the breaker how it went.
func (l *Limiter) Fetch(ctx context.Context, req *aggregator.FetchRequest) (*aggregator.FetchResponse, error) {
	u, err := url.Parse(req.URL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return l.next.Fetch(ctx, req) // it names what is wrong with the URL
	}
	rt := l.routeOf(u)
	probe, err := l.admit(rt, req)
	if err != nil {
		return nil, err
	}
	tk, err := l.takeQuota(rt, req)
	if err != nil {
		l.finish(rt, probe, Neutral, "", 0)
		return nil, err
	}
	sent, err := l.enter(ctx, rt, req)
	if err != nil {
		l.refund(tk)
		l.finish(rt, probe, Neutral, "", 0)
		return nil, err
	}
	if rt.p.hedge && !probe {
		return l.hedged(ctx, rt, sent)
	}
	r := l.call(ctx, rt, sent, probe)
	return r.resp, r.err
}

// admit asks the host's breaker; a refusal is a circuit_open FetchError.
func (l *Limiter) admit(rt route, req *aggregator.FetchRequest) (probe bool, err error) {
	h, name := rt.h, rt.s.name
	now := l.clock.Now()
	l.mu.Lock()
	d, change := h.breaker.Allow(now)
	cause := h.lastCause
	_, k, _ := h.breaker.State(now)
	l.mu.Unlock()
	l.changed(h, name, change, cause)
	if d.Allowed {
		return d.Probe, nil
	}
	l.metrics.rejected.WithLabelValues(name, h.key).Inc()
	detail := fmt.Sprintf("%s is failing (%d consecutive failures, the last: %s; opened %d times in a row); ", h.key, rt.p.breaker.Failures, cause, k)
	if d.Until.IsZero() {
		detail += "a probe call is deciding whether it is back"
	} else {
		detail += fmt.Sprintf("calls fail at once until %s (in %s), then one call probes",
			d.Until.Format(time.RFC3339), inTime(d.Until.Sub(now)))
	}
	return false, &aggregator.FetchError{Method: req.Method, URL: req.URL, Cause: aggregator.CauseCircuitOpen, Detail: detail}
}

// enter takes a slot of the host's cap, waiting within the call's and the
// job's time. It returns the request to send: when it waited, the call's
// own timeout is what is left of it.
func (l *Limiter) enter(ctx context.Context, rt route, req *aggregator.FetchRequest) (*aggregator.FetchRequest, error) {
	h, name := rt.h, rt.s.name
	start := time.Now()
	waitCtx := ctx
	bound := req.Timeout
	if _, ok := ctx.Deadline(); !ok && bound <= 0 {
		bound = fetch.DefaultTimeout // as the client bounds such a call
	}
	if bound > 0 {
		var cancel context.CancelFunc
		waitCtx, cancel = context.WithTimeout(ctx, bound)
		defer cancel()
	}
	active, _ := h.gate.counts()
	waited, err := h.gate.acquire(waitCtx)
	if !waited {
		return req, nil
	}
	if err != nil {
		l.metrics.waited.WithLabelValues(name, h.key, "timeout").Inc()
		cause := aggregator.CauseTimeout
		if errors.Is(err, context.Canceled) {
			cause = aggregator.CauseCancelled
		}
		return nil, &aggregator.FetchError{Method: req.Method, URL: req.URL, Cause: cause,
			Detail: fmt.Sprintf("no free slot to %s within the call's time: %d calls in flight (max-in-flight %d)",
				h.key, active, rt.p.maxInFlight)}
	}
	l.metrics.waited.WithLabelValues(name, h.key, "ok").Inc()
	sent := req
	if req.Timeout > 0 {
		c := *req
		c.Timeout = max(req.Timeout-time.Since(start), time.Millisecond)
		sent = &c
	}
	return sent, nil
}

// result is one call's answer.
type result struct {
	resp   *aggregator.FetchResponse
	err    error
	second bool // the hedge's
}

// call makes one call through a slot already taken, gives the slot back and
// tells the breaker.
func (l *Limiter) call(ctx context.Context, rt route, req *aggregator.FetchRequest, probe bool) result {
	start := time.Now()
	resp, err := l.next.Fetch(ctx, req)
	took := time.Since(start)
	rt.h.gate.release()
	o, cause := rt.p.count.outcome(req, resp, err)
	l.finish(rt, probe, o, cause, took)
	return result{resp: resp, err: err}
}

// finish tells h's breaker how a call went (and records its latency).
func (l *Limiter) finish(rt route, probe bool, o Outcome, cause string, took time.Duration) {
	h, name := rt.h, rt.s.name
	now := l.clock.Now()
	l.mu.Lock()
	change := h.breaker.Done(now, probe, o)
	if o == Failure {
		h.lastCause, h.lastAt = cause, now
	}
	if o == Success && took > 0 {
		h.latency.add(took)
	}
	last := h.lastCause
	l.mu.Unlock()
	if probe {
		l.metrics.probes.WithLabelValues(name, h.key, [...]string{"success", "failure", "neutral"}[o]).Inc()
	}
	l.changed(h, name, change, last)
}

// changed logs a breaker's transition, once, and sets its metrics.
func (l *Limiter) changed(h *host, name string, c *Change, cause string) {
	if c == nil {
		return
	}
	fields := []zap.Field{zap.String("supplier", name), zap.String("host", h.key), zap.Int("opened", c.Opened)}
	switch c.To {
	case Open:
		l.metrics.opened.WithLabelValues(name, h.key).Inc()
		l.log.Warn("supplier breaker opened: calls fail at once with cause circuit_open",
			append(fields, zap.String("last_failure", cause), zap.Time("until", c.Until),
				zap.Duration("for", c.Until.Sub(l.clock.Now()).Round(time.Millisecond)))...)
	case HalfOpen:
		l.log.Info("supplier breaker half-open: one probe call decides", fields...)
	case Closed:
		l.log.Info("supplier breaker closed: the probe call succeeded", fields...)
	}
}

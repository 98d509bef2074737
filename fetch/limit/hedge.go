package limit

import (
	"context"
	"slices"
	"time"

	"github.com/theaspect/aggregator"
)

// Hedging's constants.
const (
	// latencySamples is how many recent answers a host's p95 is taken over.
	latencySamples = 128
	// minSamples is how many answers a host needs before calls to it are
	// hedged: a p95 of a handful of calls says nothing.
	minSamples = 20
)

// latencies are a host's last answer times, for its p95. Its owner locks.
type latencies struct {
	ring  [latencySamples]time.Duration
	n     int // samples taken, all time
	p95   time.Duration
	stale bool
}

func (l *latencies) add(d time.Duration) {
	l.ring[l.n%latencySamples] = d
	l.n++
	l.stale = true
}

// quantile95 is the p95 of the samples, or false while there are too few.
func (l *latencies) quantile95() (time.Duration, bool) {
	if l.n < minSamples {
		return 0, false
	}
	if l.stale {
		s := slices.Clone(l.ring[:min(l.n, latencySamples)])
		slices.Sort(s)
		l.p95 = s[(len(s)*95+99)/100-1]
		l.stale = false
	}
	return l.p95, true
}

// hedged makes an idempotent supplier's call, and a second one if the first
// has not answered after the host's p95 (when the quota and the host's cap
// have room for it at once); the first answer wins and the other call is
// cancelled. A failure does not start the second call: hedging is for
// slowness, the breaker for failures.
func (l *Limiter) hedged(ctx context.Context, rt route, req *aggregator.FetchRequest) (*aggregator.FetchResponse, error) {
	h := rt.h
	l.mu.Lock()
	delay, ok := h.latency.quantile95()
	l.mu.Unlock()
	if !ok {
		r := l.call(ctx, rt, req, false)
		return r.resp, r.err
	}
	results := make(chan result, 2)
	firstCtx, cancelFirst := context.WithCancel(ctx)
	defer cancelFirst()
	secondCtx, cancelSecond := context.WithCancel(ctx)
	defer cancelSecond()
	go func() { results <- l.call(firstCtx, rt, req, false) }()
	timer := time.NewTimer(delay)
	defer timer.Stop()
	pending := 1
	for {
		select {
		case r := <-results:
			pending--
			if r.err == nil || pending == 0 {
				if pending > 0 || r.second {
					won := map[bool]string{false: "first", true: "second"}[r.second]
					l.metrics.hedges.WithLabelValues(rt.s.name, won).Inc()
				}
				return r.resp, r.err // the deferred cancels end the other call
			}
		case <-timer.C:
			if l.hedge(rt, req) {
				pending++
				go func() {
					r := l.call(secondCtx, rt, req, false)
					r.second = true
					results <- r
				}()
			}
		}
	}
}

// hedge takes the quota and a slot for a second call, only if both have
// room now.
func (l *Limiter) hedge(rt route, req *aggregator.FetchRequest) bool {
	if !rt.h.gate.tryAcquire() {
		return false
	}
	if _, err := l.takeQuota(rt, req); err != nil {
		rt.h.gate.release()
		return false
	}
	return true
}

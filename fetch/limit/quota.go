package limit

import (
	"fmt"
	"time"

	"github.com/theaspect/aggregator"
)

// ticket is a call a quota let through, so that it can be given back when
// the call never goes out.
type ticket struct {
	s      *supplier
	at     time.Time
	member string // its entry in Redis, "" when counted in memory only
}

// takeQuota counts a call against its supplier's quota, in Redis when
// configured and reachable, else in memory; a call over it is a
// rate_limited FetchError at once. The call is always recorded in memory
// too, so that when Redis goes away this instance still knows its own.
func (l *Limiter) takeQuota(rt route, req *aggregator.FetchRequest) (*ticket, error) {
	s, rate := rt.s, rt.p.rate
	if len(rate) == 0 {
		return nil, nil
	}
	now := l.clock.Now()
	tk := &ticket{s: s, at: now}
	var den *denial
	if sh := l.sharedNow(); sh != nil && sh.usable(now) {
		var err error
		den, tk.member, err = sh.take(s.name, rate, now)
		sh.report(err, now)
		if err == nil {
			if den == nil {
				l.mu.Lock()
				s.log.record(rate, now)
				l.mu.Unlock()
			}
			return tk, l.limited(s, req, den, now, true)
		}
	}
	l.mu.Lock()
	den = s.log.take(rate, now)
	l.mu.Unlock()
	return tk, l.limited(s, req, den, now, false)
}

// limited is the rate_limited FetchError of den, nil for none.
func (l *Limiter) limited(s *supplier, req *aggregator.FetchRequest, den *denial, now time.Time, shared bool) error {
	if den == nil {
		return nil
	}
	l.metrics.rateLimited.WithLabelValues(s.name, den.window.Spec).Inc()
	who := "this instance's"
	if shared {
		who = "all instances'"
	}
	return &aggregator.FetchError{Method: req.Method, URL: req.URL, Cause: aggregator.CauseRateLimited,
		Detail: fmt.Sprintf("supplier %s's quota %s is used up (%d calls, %s count); the next call is allowed at %s (in %s)",
			s.name, den.window.Spec, den.used, who, den.frees.Format(time.RFC3339), inTime(den.frees.Sub(now)))}
}

// refund gives back a call that never went out (it found no free slot).
func (l *Limiter) refund(tk *ticket) {
	if tk == nil {
		return
	}
	l.mu.Lock()
	tk.s.log.refund(tk.at)
	l.mu.Unlock()
	if sh := l.sharedNow(); tk.member != "" && sh != nil {
		sh.refund(tk.s.name, tk.member)
	}
}

// inTime is how long until something, for a message: to the millisecond
// under a second, else to the second.
func inTime(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Second)
}

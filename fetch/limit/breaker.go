package limit

import "time"

// State is a circuit breaker's state.
type State uint8

// Breaker states (Envoy's outlier detection, with a probe to come back).
const (
	Closed   State = iota // calls go through; consecutive failures are counted
	Open                  // calls fail at once with cause circuit_open
	HalfOpen              // one probe call is let through; its outcome decides
)

func (s State) String() string {
	switch s {
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return "closed"
}

// Outcome is what a finished call tells the breaker.
type Outcome uint8

// Outcomes.
const (
	Success Outcome = iota // the host answered
	Failure                // a failure the breaker counts
	Neutral                // says nothing about the host: cancelled, not sent, not counted
)

// breakerSettings are a breaker's parameters; Failures 0 never opens.
type breakerSettings struct {
	Failures    int           // consecutive failures that open it
	OpenTime    time.Duration // how long the first opening lasts
	MaxOpenTime time.Duration // the cap of OpenTime × k
	Decay       time.Duration // a closed breaker's k drops by one per Decay without a failure
}

// Breaker is one host's circuit breaker as a pure state machine: it reads
// no clock and takes no lock, its owner passes the time and serialises the
// calls, and every transition goes through Allow or Done.
//
// sony/gobreaker (v2) has a fixed open Timeout per breaker, no way to grow
// it with each opening nor to decay that growth, and reads time.Now itself,
// so the growing open times and a test with a fake clock would both work
// around it; these ~100 lines are the whole model instead.
type Breaker struct {
	set        breakerSettings
	state      State
	failures   int       // consecutive, while closed
	opened     int       // k: the times it opened since it was last quiet
	until      time.Time // the end of the open time
	probing    bool      // the half-open probe is out
	quietSince time.Time // since when a closed breaker has had no failure (for Decay)
}

// Change is a transition, for the log and the metrics.
type Change struct {
	From, To State
	Opened   int       // k after the change
	Until    time.Time // when an opening ends
}

// Decision is Allow's answer.
type Decision struct {
	Allowed bool
	Probe   bool      // the call is the half-open probe: report it with Done(probe=true)
	Until   time.Time // when rejected: when the breaker lets a probe through (zero: a probe is out)
}

// Allow decides whether a call may go now; change is set when deciding
// moved the breaker (open -> half-open).
func (b *Breaker) Allow(now time.Time) (d Decision, change *Change) {
	switch b.state {
	case Closed:
		return Decision{Allowed: true}, nil
	case Open:
		if now.Before(b.until) {
			return Decision{Until: b.until}, nil
		}
		change = b.move(HalfOpen, now)
	}
	if b.probing {
		return Decision{}, change
	}
	b.probing = true
	return Decision{Allowed: true, Probe: true}, change
}

// Done reports a finished call; probe is what Allow said about it.
func (b *Breaker) Done(now time.Time, probe bool, o Outcome) *Change {
	if probe && b.state == HalfOpen {
		b.probing = false
		switch o {
		case Success:
			return b.move(Closed, now)
		case Failure:
			return b.open(now)
		}
		return nil // the next call probes
	}
	if b.state != Closed {
		return nil // a call let through before the opening: only the probe decides
	}
	b.decay(now)
	switch o {
	case Success:
		b.failures = 0
	case Failure:
		b.failures++
		b.quietSince = now
		if b.set.Failures > 0 && b.failures >= b.set.Failures {
			return b.open(now)
		}
	}
	return nil
}

// open opens the breaker for OpenTime × k, capped.
func (b *Breaker) open(now time.Time) *Change {
	b.decay(now)
	b.opened++
	d := b.set.OpenTime * time.Duration(b.opened)
	if d > b.set.MaxOpenTime || d/time.Duration(b.opened) != b.set.OpenTime {
		d = b.set.MaxOpenTime
	}
	b.until = now.Add(d)
	return b.move(Open, now)
}

func (b *Breaker) move(to State, now time.Time) *Change {
	c := &Change{From: b.state, To: to, Opened: b.opened}
	b.state = to
	switch to {
	case Open:
		c.Until = b.until
	case Closed:
		b.failures = 0
		b.quietSince = now
	}
	return c
}

// decay drops k by one for every Decay a closed breaker had no failure.
func (b *Breaker) decay(now time.Time) {
	if b.state != Closed || b.opened == 0 || b.set.Decay <= 0 {
		return
	}
	if n := int(now.Sub(b.quietSince) / b.set.Decay); n > 0 {
		b.opened = max(0, b.opened-n)
		b.quietSince = b.quietSince.Add(time.Duration(n) * b.set.Decay)
	}
}

// State is the breaker's state now, with k and the end of its open time.
func (b *Breaker) State(now time.Time) (State, int, time.Time) {
	b.decay(now)
	return b.state, b.opened, b.until
}

// configure takes new settings, keeping the state (a reload).
func (b *Breaker) configure(s breakerSettings) {
	b.set = s
	if s.Failures == 0 && b.state != Closed {
		b.state, b.probing, b.failures = Closed, false, 0
	}
}

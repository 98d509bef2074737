package limit

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func testBreaker() *Breaker {
	b := &Breaker{}
	b.configure(breakerSettings{Failures: 3, OpenTime: 10 * time.Second, MaxOpenTime: 25 * time.Second, Decay: time.Minute})
	return b
}

// fail reports n failed calls at now.
func fail(b *Breaker, now time.Time, n int) (last *Change) {
	for range n {
		if d, _ := b.Allow(now); d.Allowed {
			last = b.Done(now, d.Probe, Failure)
		}
	}
	return last
}

// TestBreakerGrowingOpenTimes: 3 consecutive failures open it for 10 s,
// a failed probe for 20 s, then 25 s (the cap); a success in between
// resets the count; only one probe goes at a time.
func TestBreakerGrowingOpenTimes(t *testing.T) {
	b := testBreaker()
	fail(b, t0, 2)
	if d, _ := b.Allow(t0); !d.Allowed {
		t.Fatal("open after 2 failures")
	}
	b.Done(t0, false, Success)
	if c := fail(b, t0, 2); c != nil {
		t.Fatalf("a success did not reset the count: %+v", c)
	}
	c := fail(b, t0, 1)
	if c == nil || c.To != Open || c.Opened != 1 || !c.Until.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("the 3rd failure: %+v, want open until +10s", c)
	}
	now := t0
	for i, want := range []time.Duration{20 * time.Second, 25 * time.Second, 25 * time.Second} {
		_, _, until := b.State(now)
		if d, _ := b.Allow(until.Add(-time.Millisecond)); d.Allowed || !d.Until.Equal(until) {
			t.Fatalf("opening %d: allowed before its end: %+v", i+1, d)
		}
		now = until
		d, ch := b.Allow(now)
		if !d.Allowed || !d.Probe || ch == nil || ch.To != HalfOpen {
			t.Fatalf("opening %d: at its end %+v %+v, want a probe", i+1, d, ch)
		}
		if other, _ := b.Allow(now); other.Allowed || !other.Until.IsZero() {
			t.Fatalf("a second call while the probe is out: %+v", other)
		}
		c := b.Done(now, true, Failure)
		if c == nil || c.To != Open || !c.Until.Equal(now.Add(want)) {
			t.Fatalf("a failed probe %d: %+v, want open for %s", i+1, c, want)
		}
	}
	_, _, until := b.State(now)
	d, _ := b.Allow(until)
	if c := b.Done(until, d.Probe, Success); c == nil || c.To != Closed || c.Opened != 4 {
		t.Fatalf("a good probe: %+v, want closed with k 4", c)
	}
}

// TestBreakerProbeNeutral: a probe that says nothing (cancelled, not
// counted) lets the next call probe; calls let in before the opening do
// not decide.
func TestBreakerProbeNeutral(t *testing.T) {
	b := testBreaker()
	early, _ := b.Allow(t0) // in flight while it opens
	fail(b, t0, 3)
	if c := b.Done(t0, early.Probe, Success); c != nil {
		t.Fatalf("a call from before the opening closed it: %+v", c)
	}
	at := t0.Add(10 * time.Second)
	d, _ := b.Allow(at)
	if c := b.Done(at, d.Probe, Neutral); c != nil {
		t.Fatalf("a neutral probe moved it: %+v", c)
	}
	if d2, _ := b.Allow(at); !d2.Allowed || !d2.Probe {
		t.Fatalf("after a neutral probe: %+v, want the next probe", d2)
	}
}

// TestBreakerDecay: k drops by one per quiet minute once closed, so the
// next opening is shorter; a failure restarts the quiet period.
func TestBreakerDecay(t *testing.T) {
	b := testBreaker()
	fail(b, t0, 3)
	now := t0.Add(10 * time.Second)
	d, _ := b.Allow(now)
	b.Done(now, d.Probe, Failure) // k 2, open 20 s
	now = now.Add(20 * time.Second)
	d, _ = b.Allow(now)
	b.Done(now, d.Probe, Success) // closed, k 2
	if _, k, _ := b.State(now.Add(59 * time.Second)); k != 2 {
		t.Fatalf("k %d after 59 s, want 2", k)
	}
	fail(b, now.Add(30*time.Second), 1) // restarts the quiet period
	if _, k, _ := b.State(now.Add(89 * time.Second)); k != 2 {
		t.Fatalf("k %d 59 s after a failure, want 2", k)
	}
	if _, k, _ := b.State(now.Add(90 * time.Second)); k != 1 {
		t.Fatalf("k %d after a quiet minute, want 1", k)
	}
	c := fail(b, now.Add(91*time.Second), 3)
	if c == nil || c.Opened != 2 || c.Until.Sub(now.Add(91*time.Second)) != 20*time.Second {
		t.Fatalf("the next opening: %+v, want k 2, 20 s", c)
	}
}

// TestBreakerDisabled: Failures 0 never opens; disabling an open breaker
// by a reload closes it.
func TestBreakerDisabled(t *testing.T) {
	b := testBreaker()
	fail(b, t0, 3)
	b.configure(breakerSettings{})
	if d, _ := b.Allow(t0); !d.Allowed {
		t.Fatal("a disabled breaker refused a call")
	}
	if c := fail(b, t0, 100); c != nil {
		t.Fatalf("a disabled breaker moved: %+v", c)
	}
}

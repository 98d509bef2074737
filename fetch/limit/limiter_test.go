package limit

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/theaspect/aggregator"
)

// TestCap: at most max-in-flight calls reach the host at once; the others
// wait (counted) and go when a slot frees; a call whose time runs out
// while waiting fails alone, naming the cap.
func TestCap(t *testing.T) {
	t.Parallel()
	srv := newSupplier(t)
	l := newTestLimiter(t, oneSupplier("capped", srv, Policy{MaxInFlight: 2}), nil)
	release := srv.holdRequests()
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := l.get(srv.URL + "/p")
			if err == nil && resp.Status != 200 {
				err = errors.New(resp.Headers["status"])
			}
			errs <- err
		}()
	}
	<-srv.arrived
	<-srv.arrived
	waitFor(t, func() bool { return l.Snapshot()[0].Hosts[0].Waiting == 3 })
	if f, w := gauge(t, l, "aggregator_supplier_in_flight", "capped"), gauge(t, l, "aggregator_supplier_waiting", "capped"); f != 2 || w != 3 {
		t.Errorf("/metrics: in flight %v, waiting %v, want 2 and 3", f, w)
	}
	_, err := l.Fetch(context.Background(), &aggregator.FetchRequest{URL: srv.URL + "/late", Timeout: 50 * time.Millisecond})
	if causeOf(err) != "timeout" || !strings.Contains(err.Error(), "no free slot") || !strings.Contains(err.Error(), "max-in-flight 2") {
		t.Errorf("a call whose time ran out waiting: %v", err)
	}
	release()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("a capped call: %v", err)
		}
	}
	if m := srv.maxSeen.Load(); m != 2 {
		t.Errorf("the server saw %d calls at once, want 2", m)
	}
	if n := testutil.ToFloat64(l.metrics.waited.WithLabelValues("capped", srv.host(), "ok")); n != 3 {
		t.Errorf("aggregator_supplier_waited_total{result=ok} = %v, want 3", n)
	}
	if h := l.Snapshot()[0].Hosts[0]; h.InFlight != 0 || h.Waiting != 0 {
		t.Errorf("after the calls: %+v", h)
	}
}

// TestQuotaPerSecond: the 4th call within a second of a 3/s quota fails
// at once with rate_limited, naming the limit and when it frees up, and
// never reaches the supplier; a second later it goes.
func TestQuotaPerSecond(t *testing.T) {
	t.Parallel()
	srv := newSupplier(t)
	l := newTestLimiter(t, oneSupplier("fast", srv, Policy{Rate: "3/s"}), nil)
	for i := range 3 {
		if _, err := l.get(srv.URL); err != nil {
			t.Fatalf("call %d: %v", i+1, err)
		}
		l.clock.Advance(300 * time.Millisecond)
	}
	start := time.Now()
	_, err := l.get(srv.URL)
	if causeOf(err) != "rate_limited" || !strings.Contains(err.Error(), "quota 3/s is used up") ||
		!strings.Contains(err.Error(), "allowed at 2026-05-01T12:00:01Z (in 100ms)") {
		t.Fatalf("the 4th call: %v", err)
	}
	if took := time.Since(start); took > 50*time.Millisecond {
		t.Errorf("the refusal took %s", took)
	}
	if n := srv.requests.Load(); n != 3 {
		t.Errorf("the supplier saw %d calls, want 3", n)
	}
	l.clock.Advance(100 * time.Millisecond)
	if _, err := l.get(srv.URL); err != nil {
		t.Errorf("a second later: %v", err)
	}
	if n := testutil.ToFloat64(l.metrics.rateLimited.WithLabelValues("fast", "3/s")); n != 1 {
		t.Errorf("aggregator_supplier_rate_limited_total = %v", n)
	}
}

// TestQuotaPerDay: "5/d,2/m": the minute window spreads the calls, the day
// holds 5 in any 24 hours whichever window the day starts.
func TestQuotaPerDay(t *testing.T) {
	t.Parallel()
	srv := newSupplier(t)
	l := newTestLimiter(t, oneSupplier("daily", srv, Policy{Rate: "5/d,2/m"}), nil)
	ok := func(when string) {
		t.Helper()
		if _, err := l.get(srv.URL); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
	}
	refused := func(when, window, at string) {
		t.Helper()
		if _, err := l.get(srv.URL); causeOf(err) != "rate_limited" || !strings.Contains(err.Error(), "quota "+window) ||
			!strings.Contains(err.Error(), "allowed at "+at) {
			t.Fatalf("%s: %v, want %s full until %s", when, err, window, at)
		}
	}
	ok("1st")
	ok("2nd")
	refused("3rd in the minute", "2/m", "2026-05-01T12:01:00Z")
	l.clock.Advance(time.Minute)
	ok("3rd")
	ok("4th")
	l.clock.Advance(time.Hour)
	ok("5th")
	refused("6th in the day", "5/d", "2026-05-02T12:00:00Z")
	l.clock.Advance(22*time.Hour + 59*time.Minute - time.Millisecond)
	refused("a millisecond before the day is over", "5/d", "2026-05-02T12:00:00Z")
	l.clock.Advance(time.Millisecond)
	ok("a day after the 1st") // both calls of 12:00 have left the day
	if left := l.Snapshot()[0].Quota; left[0].Window != "5/d" || left[0].Left != 1 || left[1].Left != 1 {
		t.Errorf("quota left: %+v", left)
	}
	if n := srv.requests.Load(); n != 6 {
		t.Errorf("the supplier saw %d calls, want 6", n)
	}
}

// TestUpdateKeepsCounters: a reload keeps the quota spent and the open
// breaker of a supplier that is still configured, applies its new limits,
// and forgets a supplier that is gone.
func TestUpdateKeepsCounters(t *testing.T) {
	t.Parallel()
	srv, other := newSupplier(t), newSupplier(t)
	p := breakerPolicy
	p.Rate = "3/m"
	cfg := Config{Suppliers: map[string]Supplier{
		"kept": {Hosts: []string{srv.host()}, Policy: p},
		"gone": {Hosts: []string{other.host()}, Policy: Policy{Rate: "1/m"}},
	}}
	l := newTestLimiter(t, cfg, nil)
	srv.status.Store(503)
	for range 3 {
		_, _ = l.get(srv.URL)
	}
	_, _ = l.get(other.URL)
	p.Rate = "4/m"
	if err := l.Update(Config{Suppliers: map[string]Supplier{"kept": {Hosts: []string{srv.host()}, Policy: p}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.get(srv.URL); causeOf(err) != "circuit_open" {
		t.Errorf("after the reload the breaker is not open: %v", err)
	}
	l.clock.Advance(10 * time.Second)
	srv.status.Store(200)
	if _, err := l.get(srv.URL); err != nil {
		t.Fatalf("the probe: %v", err)
	}
	if _, err := l.get(srv.URL); causeOf(err) != "rate_limited" || !strings.Contains(err.Error(), "quota 4/m") {
		t.Errorf("the 5th call of 4/m after the reload: %v", err)
	}
	for _, s := range l.Snapshot() {
		if s.Name == "gone" {
			t.Errorf("a removed supplier is still listed: %+v", s)
		}
		if s.Name == other.host() && s.Named {
			t.Errorf("its host should have the defaults now: %+v", s)
		}
	}
	if _, err := l.get(other.URL); err != nil {
		t.Errorf("the removed supplier's host has no quota now: %v", err)
	}
	if err := l.Update(Config{Suppliers: map[string]Supplier{"bad": {Hosts: []string{srv.host()}, Policy: Policy{Rate: "5/w"}}}}); err == nil ||
		!strings.Contains(err.Error(), "aggregator.supplier.bad.rate") {
		t.Errorf("a bad reload: %v", err)
	}
}

// TestHedge: once an idempotent supplier's host has a p95, a call that has
// not answered by then gets a second one; the first answer wins and both
// count against the quota.
func TestHedge(t *testing.T) {
	t.Parallel()
	srv := newSupplier(t)
	on := true
	l := newTestLimiter(t, oneSupplier("idem", srv, Policy{Hedge: &on, Rate: "100/m"}), nil)
	for range minSamples {
		if _, err := l.get(srv.URL); err != nil {
			t.Fatal(err)
		}
		<-srv.arrived
	}
	release := srv.holdRequests()
	done := make(chan error, 1)
	go func() { _, err := l.get(srv.URL + "/slow"); done <- err }()
	<-srv.arrived // the first call hangs
	<-srv.arrived // the hedge
	srv.mu.Lock()
	srv.hold = nil // the next to arrive would answer; release the two held now
	srv.mu.Unlock()
	release()
	if err := <-done; err != nil {
		t.Fatalf("the hedged call: %v", err)
	}
	if n := srv.requests.Load(); n != minSamples+2 {
		t.Errorf("the supplier saw %d calls, want %d", n, minSamples+2)
	}
	won := testutil.ToFloat64(l.metrics.hedges.WithLabelValues("idem", "first")) + testutil.ToFloat64(l.metrics.hedges.WithLabelValues("idem", "second"))
	if won != 1 {
		t.Errorf("aggregator_supplier_hedged_total = %v, want 1", won)
	}
	if left := l.Snapshot()[0].Quota[0].Left; left != 100-minSamples-2 {
		t.Errorf("quota left %d, want %d", left, 100-minSamples-2)
	}
}

// TestUpdateUnderLoad: reloads while calls are in flight and waiting
// (caps shrinking and growing, the supplier coming and going) lose no
// slot: every call ends, and afterwards nothing is in flight or waiting.
func TestUpdateUnderLoad(t *testing.T) {
	t.Parallel()
	srv := newSupplier(t)
	cfgs := []Config{
		oneSupplier("load", srv, Policy{MaxInFlight: 1, Rate: "100000/s"}),
		oneSupplier("load", srv, Policy{MaxInFlight: 8}),
		{},
	}
	l := newTestLimiter(t, cfgs[0], nil)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var calls atomic.Int32
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := l.Fetch(context.Background(), &aggregator.FetchRequest{URL: srv.URL, Timeout: 2 * time.Second}); err != nil {
					t.Errorf("a call during reloads: %v", err)
					return
				}
				calls.Add(1)
			}
		}()
	}
	for i := range 60 {
		if err := l.Update(cfgs[i%len(cfgs)]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	for _, s := range l.Snapshot() {
		for _, h := range s.Hosts {
			if h.InFlight != 0 || h.Waiting != 0 {
				t.Errorf("after the calls: %s %+v", s.Name, h)
			}
		}
	}
	if calls.Load() == 0 {
		t.Error("no call went through")
	}
}

// TestForgetIdleHosts: past maxHosts, a new host makes the limiter forget
// the idle hosts, and keeps those with something to remember (a failure)
// and every configured supplier.
func TestForgetIdleHosts(t *testing.T) {
	t.Parallel()
	named, failing := newSupplier(t), newSupplier(t)
	l := newTestLimiter(t, oneSupplier("named", named, Policy{}), nil)
	failing.status.Store(500)
	for _, s := range []*supplierServer{named, failing} {
		if _, err := l.get(s.URL); err != nil {
			t.Fatal(err)
		}
	}
	l.mu.Lock()
	l.sweepAt = 4 // as if maxHosts were 4
	l.mu.Unlock()
	var idle []*supplierServer
	for range 3 {
		s := newSupplier(t)
		idle = append(idle, s)
		if _, err := l.get(s.URL); err != nil {
			t.Fatal(err)
		}
	}
	hosts, suppliers := map[string]bool{}, map[string]bool{}
	for _, s := range l.Snapshot() {
		suppliers[s.Name] = true
		for _, h := range s.Hosts {
			hosts[h.Host] = true
		}
	}
	if !hosts[failing.host()] || !hosts[idle[2].host()] || hosts[named.host()] || hosts[idle[0].host()] || hosts[idle[1].host()] {
		t.Errorf("hosts after the sweep: %v; want the failing one and the newest only", hosts)
	}
	if !suppliers["named"] || suppliers[idle[0].host()] {
		t.Errorf("suppliers after the sweep: %v; want named kept, the idle hosts' own gone", suppliers)
	}
}

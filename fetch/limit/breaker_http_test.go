package limit

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/theaspect/aggregator"
)

// breakerPolicy opens after 3 failures for 10 s, 20 s, then 25 s.
var breakerPolicy = Policy{Breaker: BreakerConfig{Failures: 3, OpenTime: 10 * time.Second, MaxOpenTime: 25 * time.Second}}

// TestBreakerOverHTTP: 3 consecutive 503s open the host's breaker: calls
// fail at once with circuit_open and never reach it; at the end of the open
// time one probe goes (others fail fast meanwhile); a failed probe opens it
// for twice as long; a good one closes it. One log line per change.
func TestBreakerOverHTTP(t *testing.T) {
	t.Parallel()
	srv := newSupplier(t)
	l := newTestLimiter(t, oneSupplier("flaky", srv, breakerPolicy), nil)
	srv.status.Store(503)
	for range 3 {
		if resp, err := l.get(srv.URL); err != nil || resp.Status != 503 {
			t.Fatalf("a 503 is an answer: %+v %v", resp, err)
		}
	}
	for range 10 {
		_, err := l.get(srv.URL)
		if causeOf(err) != "circuit_open" || !strings.Contains(err.Error(), "3 consecutive failures, the last: status 503") ||
			!strings.Contains(err.Error(), "until 2026-05-01T12:00:10Z (in 10s)") {
			t.Fatalf("while open: %v", err)
		}
	}
	if n := srv.requests.Load(); n != 3 {
		t.Fatalf("the supplier saw %d calls, want 3", n)
	}
	if v := gauge(t, l, "aggregator_supplier_breaker_state", "flaky"); v != float64(Open) {
		t.Errorf("aggregator_supplier_breaker_state = %v, want 1 (open)", v)
	}
	l.clock.Advance(10 * time.Second)
	if resp, err := l.get(srv.URL); err != nil || resp.Status != 503 {
		t.Fatalf("the probe: %+v %v", resp, err)
	}
	_, err := l.get(srv.URL)
	if causeOf(err) != "circuit_open" || !strings.Contains(err.Error(), "(in 20s)") || !strings.Contains(err.Error(), "opened 2 times") {
		t.Fatalf("after a failed probe: %v, want open for 20 s", err)
	}
	l.clock.Advance(20 * time.Second)
	srv.status.Store(200)
	srv.drain()
	release := srv.holdRequests()
	probe := make(chan error, 1)
	go func() { _, err := l.get(srv.URL); probe <- err }()
	<-srv.arrived
	if _, err := l.get(srv.URL); causeOf(err) != "circuit_open" || !strings.Contains(err.Error(), "a probe call is deciding") {
		t.Errorf("while the probe is out: %v", err)
	}
	release()
	if err := <-probe; err != nil {
		t.Fatalf("the good probe: %v", err)
	}
	if resp, err := l.get(srv.URL); err != nil || resp.Status != 200 {
		t.Errorf("closed: %+v %v", resp, err)
	}
	h := l.Snapshot()[0].Hosts[0]
	if h.State != "closed" || h.Opened != 2 || h.LastFailure != "status 503" {
		t.Errorf("snapshot: %+v", h)
	}
	var lines []string
	for _, e := range l.logs.All() {
		lines = append(lines, e.Message)
	}
	if got := strings.Join(lines, "|"); strings.Count(got, "opened") != 2 || strings.Count(got, "half-open") != 2 || strings.Count(got, "closed") != 1 {
		t.Errorf("log lines: %s, want 2 opened, 2 half-open, 1 closed", got)
	}
	if n := testutil.ToFloat64(l.metrics.rejected.WithLabelValues("flaky", srv.host())); n != 12 {
		t.Errorf("aggregator_supplier_circuit_open_total = %v, want 12", n)
	}
	if n := testutil.ToFloat64(l.metrics.probes.WithLabelValues("flaky", srv.host(), "failure")); n != 1 {
		t.Errorf("failed probes = %v", n)
	}
}

// TestBreakerNoAnswer: refused connections and timeouts count; a call the
// job cancelled does not.
func TestBreakerNoAnswer(t *testing.T) {
	t.Parallel()
	srv := newSupplier(t)
	l := newTestLimiter(t, oneSupplier("slow", srv, breakerPolicy), nil)
	release := srv.holdRequests()
	defer release()
	for range 5 {
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-srv.arrived; cancel() }()
		if _, err := l.Fetch(ctx, &aggregator.FetchRequest{URL: srv.URL}); causeOf(err) != "cancelled" {
			t.Fatalf("a cancelled call: %v", err)
		}
	}
	for range 3 {
		if _, err := l.Fetch(context.Background(), &aggregator.FetchRequest{URL: srv.URL, Timeout: 20 * time.Millisecond}); causeOf(err) != "timeout" {
			t.Fatalf("a slow call: %v", err)
		}
	}
	if _, err := l.get(srv.URL); causeOf(err) != "circuit_open" || !strings.Contains(err.Error(), "the last: timeout") {
		t.Errorf("after 3 timeouts (and 5 cancelled calls before): %v", err)
	}
}

// TestNotFailures: statuses a call says are normal answers never count,
// even where the configuration counts their class.
func TestNotFailures(t *testing.T) {
	t.Parallel()
	srv := newSupplier(t)
	p := breakerPolicy
	p.Breaker.Count = []string{"5xx", "404"}
	l := newTestLimiter(t, oneSupplier("picky", srv, p), nil)
	for _, status := range []int{500, 404} {
		srv.status.Store(int32(status))
		for range 10 {
			resp, err := l.Fetch(context.Background(), &aggregator.FetchRequest{URL: srv.URL, NotFailures: []int{404, 500}})
			if err != nil || resp.Status != status {
				t.Fatalf("a not-failure %d: %+v %v", status, resp, err)
			}
		}
	}
	for range 3 {
		_, _ = l.get(srv.URL) // the same 404 without NotFailures counts
	}
	if _, err := l.get(srv.URL); causeOf(err) != "circuit_open" {
		t.Errorf("3 counted 404s: %v", err)
	}
}

// TestDefaultsForEveryHost: a host no supplier names gets the defaults,
// breaker on, under its own name.
func TestDefaultsForEveryHost(t *testing.T) {
	t.Parallel()
	srv := newSupplier(t)
	l := newTestLimiter(t, Config{}, nil)
	srv.status.Store(502)
	for range 5 {
		_, _ = l.get(srv.URL)
	}
	_, err := l.get(srv.URL)
	if causeOf(err) != "circuit_open" || !strings.Contains(err.Error(), "(in 30s)") {
		t.Errorf("the 6th call after 5 502s: %v", err)
	}
	if s := l.Snapshot(); len(s) != 1 || s[0].Named || s[0].Name != srv.host() || s[0].Hosts[0].State != "open" {
		t.Errorf("snapshot: %+v", s)
	}
}

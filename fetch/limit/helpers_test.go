package limit

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/theaspect/aggregator"
	"github.com/theaspect/aggregator/fetch"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// supplierServer is a real HTTP server whose answers the test chooses:
// status (200 by default), and hold, which while set keeps each request
// until it is closed. It counts requests and the most in flight at once.
type supplierServer struct {
	*httptest.Server
	status   atomic.Int32
	requests atomic.Int32
	inFlight atomic.Int32
	maxSeen  atomic.Int32
	mu       sync.Mutex
	hold     chan struct{}
	arrived  chan struct{} // one value per request that arrives
}

func newSupplier(t *testing.T) *supplierServer {
	s := &supplierServer{arrived: make(chan struct{}, 1000)}
	s.status.Store(200)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		n := s.inFlight.Add(1)
		defer s.inFlight.Add(-1)
		for {
			m := s.maxSeen.Load()
			if n <= m || s.maxSeen.CompareAndSwap(m, n) {
				break
			}
		}
		s.arrived <- struct{}{}
		s.mu.Lock()
		hold := s.hold
		s.mu.Unlock()
		if hold != nil {
			select {
			case <-hold:
			case <-r.Context().Done():
				return
			}
		}
		w.WriteHeader(int(s.status.Load()))
		_, _ = w.Write([]byte(r.URL.Path))
	}))
	t.Cleanup(s.Close)
	return s
}

// holdRequests makes requests wait until the returned func is called.
func (s *supplierServer) holdRequests() (release func()) {
	ch := make(chan struct{})
	s.mu.Lock()
	s.hold = ch
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			s.hold = nil
			s.mu.Unlock()
			close(ch)
		})
	}
}

// drain forgets the arrivals so far.
func (s *supplierServer) drain() {
	for {
		select {
		case <-s.arrived:
		default:
			return
		}
	}
}

// host is the server's host:port, as a supplier's hosts name it.
func (s *supplierServer) host() string { return strings.TrimPrefix(s.URL, "http://") }

// testLimiter is a Limiter in front of a real fetch.Client, with a fake
// clock, an observed log and its own registry.
type testLimiter struct {
	*Limiter
	clock *fakeClock
	logs  *observer.ObservedLogs
	reg   *prometheus.Registry
}

func newTestLimiter(t *testing.T, cfg Config, clock *fakeClock) *testLimiter {
	t.Helper()
	core, logs := observer.New(zap.InfoLevel)
	reg := prometheus.NewRegistry()
	if clock == nil {
		clock = newClock()
	}
	l, err := New(fetch.New(fetch.Config{}), cfg, Options{Clock: clock, Logger: zap.New(core), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return &testLimiter{Limiter: l, clock: clock, logs: logs, reg: reg}
}

func (l *testLimiter) get(url string) (*aggregator.FetchResponse, error) {
	return l.Fetch(context.Background(), &aggregator.FetchRequest{Method: "GET", URL: url})
}

// causeOf is err's FetchError cause, "" for none.
func causeOf(err error) string {
	var fe *aggregator.FetchError
	if errors.As(err, &fe) {
		return string(fe.Cause)
	}
	if err != nil {
		return "not a FetchError: " + err.Error()
	}
	return ""
}

func oneSupplier(name string, s *supplierServer, p Policy) Config {
	return Config{Suppliers: map[string]Supplier{name: {Hosts: []string{s.host()}, Policy: p}}}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// gauge reads a gauge of supplier from l's registry, as /metrics shows it.
func gauge(t *testing.T, l *testLimiter, name, supplier string) float64 {
	t.Helper()
	mfs, err := l.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "supplier" && lp.GetValue() == supplier {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{supplier=%q}", name, supplier)
	return 0
}

package limit

import (
	"context"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/theaspect/aggregator"
)

// redisServer is a real redis-server (Debian's package redis-server) on a
// free 127.0.0.1 port, without persistence; stop and start it again on
// the same port to test an outage.
type redisServer struct {
	t    testing.TB
	bin  string
	port int
	cmd  *exec.Cmd
}

func startRedis(t testing.TB) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed (Debian package redis-server): the shared quotas are not tested")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	r := &redisServer{t: t, bin: bin, port: port}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

func (r *redisServer) start() {
	r.t.Helper()
	r.cmd = exec.Command(r.bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: r.addr(), MaxRetries: -1, DisableIdentity: true})
	defer c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			r.t.Fatalf("redis-server on %s did not start", r.addr())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *redisServer) stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		r.cmd = nil
	}
}

// TestRedisShared: two instances sharing one Redis count one quota: calls
// through either use it up for both, and each says so.
func TestRedisShared(t *testing.T) {
	t.Parallel()
	rs := startRedis(t)
	srv := newSupplier(t)
	cfg := oneSupplier("shared", srv, Policy{Rate: "4/s,10/d"})
	cfg.Redis = RedisConfig{Address: rs.addr(), Prefix: "test-shared:"}
	clock := newClock()
	a, b := newTestLimiter(t, cfg, clock), newTestLimiter(t, cfg, clock)
	for i, l := range []*testLimiter{a, b, a, b} {
		if _, err := l.get(srv.URL); err != nil {
			t.Fatalf("call %d: %v", i+1, err)
		}
	}
	for _, l := range []*testLimiter{a, b} {
		_, err := l.get(srv.URL)
		if causeOf(err) != "rate_limited" || !strings.Contains(err.Error(), "all instances' count") || !strings.Contains(err.Error(), "(in 1s)") {
			t.Errorf("the 5th call in a second: %v", err)
		}
		if q := l.Snapshot()[0]; !q.Shared || q.Quota[0].Window != "10/d" || q.Quota[0].Left != 6 || q.Quota[1].Left != 0 {
			t.Errorf("snapshot: %+v", q)
		}
	}
	clock.Advance(time.Second)
	for i := range 6 {
		if _, err := []*testLimiter{a, b}[i%2].get(srv.URL); err != nil {
			t.Fatalf("second 2, call %d: %v", i+1, err)
		}
		clock.Advance(300 * time.Millisecond)
	}
	if _, err := b.get(srv.URL); causeOf(err) != "rate_limited" || !strings.Contains(err.Error(), "quota 10/d") ||
		!strings.Contains(err.Error(), "allowed at 2026-05-02T12:00:00Z") {
		t.Errorf("the 11th call in a day: %v", err)
	}
	if n := srv.requests.Load(); n != 10 {
		t.Errorf("the supplier saw %d calls, want 10", n)
	}
	if h := a.Health(); h.Status != aggregator.HealthOK {
		t.Errorf("health: %+v", h)
	}
}

// TestRedisDownAndBack: with Redis gone the instance counts in memory
// (knowing its own calls so far), logs it once and is degraded; when Redis
// is back it shares again, logs that once and is ok.
func TestRedisDownAndBack(t *testing.T) {
	t.Parallel()
	rs := startRedis(t)
	srv := newSupplier(t)
	cfg := oneSupplier("outage", srv, Policy{Rate: "5/m"})
	cfg.Redis = RedisConfig{Address: rs.addr(), Prefix: "test-outage:", Retry: time.Second, Timeout: 200 * time.Millisecond}
	l := newTestLimiter(t, cfg, nil)
	for range 3 {
		if _, err := l.get(srv.URL); err != nil {
			t.Fatal(err)
		}
	}
	rs.stop()
	for i := range 2 {
		if _, err := l.get(srv.URL); err != nil {
			t.Fatalf("call %d with Redis down: %v", i+1, err)
		}
	}
	_, err := l.get(srv.URL)
	if causeOf(err) != "rate_limited" || !strings.Contains(err.Error(), "this instance's count") {
		t.Errorf("the 6th call in a minute, counted in memory: %v", err)
	}
	if h := l.Health(); h.Status != aggregator.HealthDegraded || !strings.Contains(h.Reason, rs.addr()) {
		t.Errorf("health with Redis down: %+v", h)
	}
	if n := l.logs.FilterMessageSnippet("Redis is unreachable").Len(); n != 1 {
		t.Errorf("%d log lines for the outage, want 1", n)
	}
	if v := testutil.ToFloat64(l.metrics.shared); v != 0 {
		t.Errorf("aggregator_supplier_quota_shared = %v while down", v)
	}
	rs.start() // empty: it kept nothing
	if h := l.Health(); h.Status != aggregator.HealthDegraded {
		t.Errorf("health before the retry is due: %+v", h)
	}
	l.clock.Advance(time.Second)
	if h := l.Health(); h.Status != aggregator.HealthOK {
		t.Errorf("health with Redis back: %+v", h)
	}
	if _, err := l.get(srv.URL); err != nil {
		t.Errorf("a call with Redis back (and empty): %v", err)
	}
	if s := l.Snapshot()[0]; !s.Shared || s.Quota[0].Left != 4 {
		t.Errorf("snapshot with Redis back: %+v", s)
	}
	if n := l.logs.FilterMessageSnippet("Redis is back").Len(); n != 1 {
		t.Errorf("%d log lines for the recovery, want 1", n)
	}
}

// startRedisB is startRedis for a benchmark: its address.
func startRedisB(b *testing.B) string { return startRedis(b).addr() }

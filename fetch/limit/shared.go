package limit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/theaspect/aggregator"
	"go.uber.org/zap"
)

// takeScript counts a call against a supplier's quota in Redis, atomically
// for every instance: the same sliding log as callLog, as a sorted set
// (score = the call's time in ms, member = the call). A sliding log rather
// than GCRA or a token bucket, because a token bucket of rate N/T with a
// burst B lets B+N calls through in some window T (a "5000/d" with any
// useful burst lets a supplier see up to 10,000 in a day), while the log
// holds "at most N in any T" exactly and knows when the next place frees
// up. Its cost is memory: one entry per call of the longest window.
//
// KEYS[1] the log; ARGV[1] now (ms); ARGV[2] this call's member; ARGV[3]
// the longest window (ms); ARGV[4..] pairs of N and window (ms). Returns
// {1} when counted, else {0, window index, calls in it, the time (ms) of
// the call whose leaving frees a place}.
var takeScript = redis.NewScript(`
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[3]))
for i = 4, #ARGV, 2 do
  local n, per = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  local from = '(' .. (now - per)
  local used = redis.call('ZCOUNT', KEYS[1], from, '+inf')
  if used >= n then
    local nth = redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', from, 'WITHSCORES', 'LIMIT', n - 1, 1)
    return {0, (i - 4) / 2, used, nth[2]}
  end
end
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) + 1000)
return {1}
`)

// shared is the quotas' Redis, and whether it is reachable now: while it is
// not, calls are counted in memory, it is tried again every cfg.Retry, and
// the outage and the recovery are logged once each.
type shared struct {
	cfg    RedisConfig
	client *redis.Client
	log    *zap.Logger
	gauge  prometheus.Gauge
	id     string // this instance, for unique members
	seq    atomic.Uint64
	closed atomic.Bool // a reload replaced it: its errors say nothing of Redis

	mu      sync.Mutex
	down    bool
	since   time.Time // down since
	cause   string    // why
	retryAt time.Time
	trying  bool // one call tries Redis again; the others count in memory meanwhile
}

func newShared(cfg RedisConfig, log *zap.Logger, gauge prometheus.Gauge) *shared {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	gauge.Set(1)
	return &shared{cfg: cfg, log: log, gauge: gauge, id: hex.EncodeToString(b),
		client: redis.NewClient(&redis.Options{
			Addr: cfg.Address, Password: cfg.Password, DB: cfg.DB,
			DialTimeout: cfg.Timeout, ReadTimeout: cfg.Timeout, WriteTimeout: cfg.Timeout,
			MaxRetries:      -1,   // a failure falls back to memory at once; retrying is ours (cfg.Retry)
			DisableIdentity: true, // CLIENT SETINFO is Redis 7.2's; Debian's 7.0 answers it with an error
		})}
}

func (s *shared) close() error {
	s.closed.Store(true)
	return s.client.Close()
}

// usable tells whether a call should ask Redis now.
func (s *shared) usable(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.down {
		return true
	}
	if s.trying || now.Before(s.retryAt) {
		return false
	}
	s.trying = true
	return true
}

// report records how asking Redis went, logging a change once.
func (s *shared) report(err error, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.trying = false
	if s.closed.Load() {
		return
	}
	switch {
	case err != nil && !s.down:
		s.down, s.since, s.cause = true, now, err.Error()
		s.retryAt = now.Add(s.cfg.Retry)
		s.gauge.Set(0)
		s.log.Warn("supplier limits: Redis is unreachable, each instance counts its quotas alone until it is back",
			zap.String("redis", s.cfg.Address), zap.Error(err), zap.Duration("retry", s.cfg.Retry))
	case err != nil:
		s.retryAt = now.Add(s.cfg.Retry)
	case s.down:
		s.down = false
		s.gauge.Set(1)
		s.log.Info("supplier limits: Redis is back, quotas are shared again",
			zap.String("redis", s.cfg.Address), zap.Duration("down", now.Sub(s.since).Round(time.Millisecond)))
	}
}

// health is degraded while Redis is down; asking it tries Redis again when
// a retry is due, so /health recovers even when no call comes.
func (s *shared) health(now time.Time) aggregator.Health {
	if s.usable(now) {
		s.mu.Lock()
		down := s.down
		s.mu.Unlock()
		if down {
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
			err := s.client.Ping(ctx).Err()
			cancel()
			s.report(err, now)
		} else {
			s.report(nil, now)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.down {
		return aggregator.Health{Status: aggregator.HealthOK}
	}
	return aggregator.Health{Status: aggregator.HealthDegraded,
		Reason: fmt.Sprintf("supplier limits: Redis at %s unreachable since %s (%s); quotas are counted by each instance alone",
			s.cfg.Address, s.since.Format(time.RFC3339), s.cause)}
}

func (s *shared) key(supplier string) string { return s.cfg.Prefix + "quota:" + supplier }

func (s *shared) ctx() (context.Context, context.CancelFunc) {
	// Not the job's context: a job cancelled meanwhile must not look like
	// Redis failing, and a command is bounded by cfg.Timeout anyway.
	return context.WithTimeout(context.Background(), s.cfg.Timeout)
}

// take counts a call at now; a denial says which window is full.
func (s *shared) take(supplier string, r Rate, now time.Time) (*denial, string, error) {
	member := s.id + ":" + strconv.FormatUint(s.seq.Add(1), 36)
	args := []any{now.UnixMilli(), member, r.longest().Milliseconds()}
	for _, w := range r {
		args = append(args, w.N, w.Per.Milliseconds())
	}
	ctx, cancel := s.ctx()
	defer cancel()
	v, err := takeScript.Run(ctx, s.client, []string{s.key(supplier)}, args...).Slice()
	if err != nil {
		return nil, "", err
	}
	if len(v) == 1 {
		return nil, member, nil
	}
	if len(v) != 4 {
		return nil, "", fmt.Errorf("the quota script answered %v", v)
	}
	i, _ := v[1].(int64)
	used, _ := v[2].(int64)
	ms, err := strconv.ParseFloat(fmt.Sprint(v[3]), 64)
	if err != nil || int(i) >= len(r) {
		return nil, "", fmt.Errorf("the quota script answered %v", v)
	}
	w := r[i]
	return &denial{window: w, used: int(used), frees: time.UnixMilli(int64(ms)).Add(w.Per)}, "", nil
}

// refund forgets a call that never went out.
func (s *shared) refund(supplier, member string) {
	ctx, cancel := s.ctx()
	defer cancel()
	_ = s.client.ZRem(ctx, s.key(supplier), member).Err() // at worst the call stays counted
}

// left is how many calls each window allows now, across instances.
func (s *shared) left(supplier string, r Rate, now time.Time) ([]int, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	pipe := s.client.Pipeline()
	counts := make([]*redis.IntCmd, len(r))
	for i, w := range r {
		counts[i] = pipe.ZCount(ctx, s.key(supplier), "("+strconv.FormatInt(now.Add(-w.Per).UnixMilli(), 10), "+inf")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	out := make([]int, len(r))
	for i, w := range r {
		out[i] = max(0, w.N-int(counts[i].Val()))
	}
	return out, nil
}

// Package limit protects suppliers and the service from each other
// (SPEC §18): an aggregator.Fetcher in front of the HTTP client that caps
// the calls in flight to each host, keeps each supplier within its quota,
// stops calling a host that keeps failing (a circuit breaker with growing
// open times, Envoy's outlier-detection model) and, for suppliers marked
// idempotent, hedges slow calls. Suppliers are names that map to hosts;
// every other host gets the defaults. With Redis, quotas are shared by
// every instance. docs/suppliers.md is the operator's guide.
package limit

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Config is the whole of the supplier limits: the defaults, the suppliers
// and where quotas are shared. Each part decodes (viper's UnmarshalKey,
// whose mapstructure tags are the keys' last parts) from its own tree:
// Default from aggregator.fetch, Suppliers from aggregator.supplier,
// Redis from aggregator.fetch.redis.
type Config struct {
	// Default is the policy of every host no supplier names, and what a
	// supplier leaves unset (aggregator.fetch.*).
	Default Policy
	// Suppliers by name (aggregator.supplier.NAME.*).
	Suppliers map[string]Supplier
	// Redis shares quotas between instances (aggregator.fetch.redis.*).
	Redis RedisConfig
}

// Supplier is one supplier: its hosts and its own policy.
type Supplier struct {
	// Hosts are the host names its calls go to (aggregator.supplier.NAME.hosts,
	// comma-separated): "api.example.com" (any port), "api.example.com:8443"
	// (that port only) or "*.example.com" (every name under it).
	Hosts  []string `mapstructure:"hosts"`
	Policy `mapstructure:",squash"`
}

// Policy is what limits a supplier's calls. A zero field takes the
// default's value.
type Policy struct {
	// MaxInFlight is how many calls may be in flight to one host at once;
	// the others wait within their call's and job's time (max-in-flight,
	// default 1024, the transport's own max-conns-per-host; -1 = no cap).
	MaxInFlight int `mapstructure:"max-in-flight"`
	// Rate is the quota of the whole supplier, all its hosts together
	// (rate, default none): "50/s", "300/m", "5000/24h", "5000/d"; several
	// windows at once separated by commas, "5000/d,10/s", each holding in
	// any window of its length; "none" for no quota. See ParseRate.
	Rate string `mapstructure:"rate"`
	// Breaker is the host's circuit breaker (breaker.*).
	Breaker BreakerConfig `mapstructure:"breaker"`
	// Hedge marks the supplier's calls idempotent: a call that has not
	// answered after the host's observed p95 gets a second one, and the
	// first answer wins; both count against the quota (hedge, default false).
	Hedge *bool `mapstructure:"hedge"`
}

// BreakerConfig configures the circuit breaker of each host.
type BreakerConfig struct {
	// Enabled turns the breaker on (breaker.enabled, default true).
	Enabled *bool `mapstructure:"enabled"`
	// Failures is how many consecutive failures open it (breaker.failures, default 5).
	Failures int `mapstructure:"failures"`
	// Count is what a failure is (breaker.count, default
	// 5xx,timeout,refused,dns,tls,network): fetch causes, status classes
	// ("5xx", "4xx") and statuses ("429").
	Count []string `mapstructure:"count"`
	// OpenTime is how long it stays open the first time; the k-th time in a
	// row it stays k times as long (breaker.open-time, default 30s).
	OpenTime time.Duration `mapstructure:"open-time"`
	// MaxOpenTime caps the open time (breaker.max-open-time, default 5m).
	MaxOpenTime time.Duration `mapstructure:"max-open-time"`
	// Decay is how long a closed breaker must go without a failure for k to
	// drop by one (breaker.decay, default 1m).
	Decay time.Duration `mapstructure:"decay"`
}

// RedisConfig is where quotas are shared.
type RedisConfig struct {
	// Address is host:port of the Redis server (redis.address); "" keeps
	// quotas in this instance's memory, each instance counting alone.
	Address string `mapstructure:"address"`
	// Password is Redis AUTH's (redis.password, default none).
	Password string `mapstructure:"password"`
	// DB is the database number (redis.db, default 0).
	DB int `mapstructure:"db"`
	// Prefix starts every key the limits write (redis.prefix, default "aggregator:").
	Prefix string `mapstructure:"prefix"`
	// Timeout bounds one Redis command; past it the call is counted in
	// memory (redis.timeout, default 100ms).
	Timeout time.Duration `mapstructure:"timeout"`
	// Retry is how often an instance whose Redis is down tries it again
	// (redis.retry, default 1s).
	Retry time.Duration `mapstructure:"retry"`
}

// Defaults is the configuration with nothing set: every host capped at
// 1024 calls in flight, no quota, breakers on.
func Defaults() Config {
	on := true
	return Config{
		Default: Policy{
			MaxInFlight: 1024,
			Rate:        "none",
			Breaker: BreakerConfig{Enabled: &on, Failures: 5, Count: []string{"5xx", "timeout", "refused", "dns", "tls", "network"},
				OpenTime: 30 * time.Second, MaxOpenTime: 5 * time.Minute, Decay: time.Minute},
			Hedge: new(bool),
		},
		Redis: RedisConfig{Prefix: "aggregator:", Timeout: 100 * time.Millisecond, Retry: time.Second},
	}
}

// policy is a Policy with every field resolved and parsed.
type policy struct {
	maxInFlight int // 0 = no cap
	rate        Rate
	breaker     breakerSettings
	count       failureSet
	hedge       bool
}

// resolved is a checked Config.
type resolved struct {
	def       policy
	suppliers map[string]policy
	hosts     hostTable
	redis     RedisConfig
}

// resolve checks cfg and fills what it leaves unset from Defaults; the
// error names the key at fault.
func resolve(cfg Config) (*resolved, error) {
	d := Defaults()
	def := overlay(d.Default, cfg.Default)
	base, err := parsePolicy(def, "aggregator.fetch")
	if err != nil {
		return nil, err
	}
	r := &resolved{def: base, suppliers: map[string]policy{}, redis: cfg.Redis}
	names := make([]string, 0, len(cfg.Suppliers))
	for name := range cfg.Suppliers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		s := cfg.Suppliers[name]
		key := "aggregator.supplier." + name
		if name == "" || strings.ContainsAny(name, ".: \t") {
			return nil, fmt.Errorf("%s: a supplier name has no dots, colons or spaces (a host no supplier names goes by host:port)", key)
		}
		if len(s.Hosts) == 0 {
			return nil, fmt.Errorf("%s.hosts: a supplier needs at least one host", key)
		}
		p, err := parsePolicy(overlay(def, s.Policy), key)
		if err != nil {
			return nil, err
		}
		r.suppliers[name] = p
		for _, h := range s.Hosts {
			if err := r.hosts.add(h, name); err != nil {
				return nil, fmt.Errorf("%s.hosts: %w", key, err)
			}
		}
	}
	if r.redis.Prefix == "" {
		r.redis.Prefix = d.Redis.Prefix
	}
	if r.redis.Timeout <= 0 {
		r.redis.Timeout = d.Redis.Timeout
	}
	if r.redis.Retry <= 0 {
		r.redis.Retry = d.Redis.Retry
	}
	return r, nil
}

// overlay is over's fields where set, else base's.
func overlay(base, over Policy) Policy {
	if over.MaxInFlight != 0 {
		base.MaxInFlight = over.MaxInFlight
	}
	if over.Rate != "" {
		base.Rate = over.Rate
	}
	if over.Hedge != nil {
		base.Hedge = over.Hedge
	}
	b, o := &base.Breaker, over.Breaker
	if o.Enabled != nil {
		b.Enabled = o.Enabled
	}
	if o.Failures != 0 {
		b.Failures = o.Failures
	}
	if len(o.Count) > 0 {
		b.Count = o.Count
	}
	if o.OpenTime != 0 {
		b.OpenTime = o.OpenTime
	}
	if o.MaxOpenTime != 0 {
		b.MaxOpenTime = o.MaxOpenTime
	}
	if o.Decay != 0 {
		b.Decay = o.Decay
	}
	return base
}

// parsePolicy checks and parses p; key names its configuration prefix.
func parsePolicy(p Policy, key string) (policy, error) {
	var out policy
	switch n := p.MaxInFlight; {
	case n < -1:
		return out, fmt.Errorf("%s.max-in-flight: %d is not a number of calls (-1 for no cap)", key, n)
	case n > 0:
		out.maxInFlight = n
	}
	var err error
	if out.rate, err = ParseRate(p.Rate); err != nil {
		return out, fmt.Errorf("%s.rate: %w", key, err)
	}
	b := p.Breaker
	if out.count, err = parseFailures(b.Count); err != nil {
		return out, fmt.Errorf("%s.breaker.count: %w", key, err)
	}
	if b.Failures < 0 || b.OpenTime <= 0 || b.MaxOpenTime < b.OpenTime || b.Decay < 0 {
		return out, fmt.Errorf("%s.breaker: failures %d, open-time %s, max-open-time %s, decay %s: a count and times above zero, the max at least the open time",
			key, b.Failures, b.OpenTime, b.MaxOpenTime, b.Decay)
	}
	out.breaker = breakerSettings{Failures: b.Failures, OpenTime: b.OpenTime, MaxOpenTime: b.MaxOpenTime, Decay: b.Decay}
	if b.Enabled != nil && !*b.Enabled {
		out.breaker.Failures = 0 // never opens
	}
	out.hedge = p.Hedge != nil && *p.Hedge
	return out, nil
}

// hostTable maps host patterns to supplier names.
type hostTable struct {
	exact    map[string]string // "name" or "name:port"
	wildcard []wildcardHost    // "*.name", longest first
}

type wildcardHost struct{ suffix, supplier string }

var errEmptyHost = errors.New("an empty host name")

func (t *hostTable) add(pattern, supplier string) error {
	h := strings.ToLower(strings.TrimSpace(pattern))
	if h == "" {
		return errEmptyHost
	}
	if strings.ContainsAny(h, "/ ") {
		return fmt.Errorf("%q is not a host name (no scheme or path)", pattern)
	}
	if suffix, ok := strings.CutPrefix(h, "*."); ok {
		for _, w := range t.wildcard {
			if w.suffix == "."+suffix {
				return fmt.Errorf("%q is named by suppliers %s and %s", pattern, w.supplier, supplier)
			}
		}
		t.wildcard = append(t.wildcard, wildcardHost{"." + suffix, supplier})
		sort.SliceStable(t.wildcard, func(i, j int) bool { return len(t.wildcard[i].suffix) > len(t.wildcard[j].suffix) })
		return nil
	}
	if t.exact == nil {
		t.exact = map[string]string{}
	}
	if other, ok := t.exact[h]; ok {
		return fmt.Errorf("%q is named by suppliers %s and %s", pattern, other, supplier)
	}
	t.exact[h] = supplier
	return nil
}

// lookup is the supplier of hostname:port, or "".
func (t *hostTable) lookup(hostname, port string) string {
	if s, ok := t.exact[hostname+":"+port]; ok {
		return s
	}
	if s, ok := t.exact[hostname]; ok {
		return s
	}
	for _, w := range t.wildcard {
		if strings.HasSuffix(hostname, w.suffix) {
			return w.supplier
		}
	}
	return ""
}

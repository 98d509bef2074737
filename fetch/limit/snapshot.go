package limit

import (
	"sort"
	"time"

	"github.com/theaspect/aggregator"
)

// SupplierSnapshot is one supplier's state, for /suppliers and
// `aggregator suppliers`.
type SupplierSnapshot struct {
	Name string `json:"name"`
	// Named is false for a host no supplier names (it has the defaults).
	Named bool   `json:"named"`
	Rate  string `json:"rate"`
	// Quota is what each window of Rate has left now; Shared tells whether
	// that is every instance's count (Redis) or this instance's.
	Quota  []QuotaSnapshot `json:"quota,omitempty"`
	Shared bool            `json:"shared"`
	Hosts  []HostSnapshot  `json:"hosts"`
}

// QuotaSnapshot is one window of a quota.
type QuotaSnapshot struct {
	Window string `json:"window"`
	Left   int    `json:"left"`
}

// HostSnapshot is one host a supplier's calls went to.
type HostSnapshot struct {
	Host        string     `json:"host"`
	State       string     `json:"state"`  // closed, open, half-open
	Opened      int        `json:"opened"` // k: the times it opened in a row
	OpenUntil   *time.Time `json:"openUntil,omitempty"`
	InFlight    int        `json:"inFlight"`
	Waiting     int        `json:"waiting"`
	MaxInFlight int        `json:"maxInFlight"` // 0: no cap
	LastFailure string     `json:"lastFailure,omitempty"`
	LastAt      *time.Time `json:"lastFailureAt,omitempty"`
}

// Snapshot is every supplier's state, the named ones first, by name.
func (l *Limiter) Snapshot() []SupplierSnapshot {
	now := l.clock.Now()
	l.mu.Lock()
	byName := map[string]*SupplierSnapshot{}
	rates := map[string]Rate{}
	out := make([]*SupplierSnapshot, 0, len(l.suppliers))
	for name, s := range l.suppliers {
		snap := &SupplierSnapshot{Name: name, Named: s.named, Rate: s.policy.rate.String(), Hosts: []HostSnapshot{}}
		if len(s.policy.rate) > 0 {
			rates[name] = s.policy.rate
			for i, left := range s.log.left(s.policy.rate, now) {
				snap.Quota = append(snap.Quota, QuotaSnapshot{Window: s.policy.rate[i].Spec, Left: left})
			}
		}
		byName[name] = snap
		out = append(out, snap)
	}
	for _, h := range l.hosts {
		byName[h.supplier.name].Hosts = append(byName[h.supplier.name].Hosts, l.hostSnapshot(h, now))
	}
	l.mu.Unlock()
	if sh := l.sharedNow(); sh != nil && sh.usable(now) {
		for name, r := range rates {
			left, err := sh.left(name, r, now)
			sh.report(err, now)
			if err != nil {
				break
			}
			byName[name].Shared = true
			for i := range left {
				byName[name].Quota[i].Left = left[i]
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Named != out[j].Named {
			return out[i].Named
		}
		return out[i].Name < out[j].Name
	})
	list := make([]SupplierSnapshot, len(out))
	for i, s := range out {
		sort.Slice(s.Hosts, func(a, b int) bool { return s.Hosts[a].Host < s.Hosts[b].Host })
		list[i] = *s
	}
	return list
}

// hostSnapshot is h's state; l.mu is held.
func (l *Limiter) hostSnapshot(h *host, now time.Time) HostSnapshot {
	state, k, until := h.breaker.State(now)
	active, waiting := h.gate.counts()
	hs := HostSnapshot{Host: h.key, State: state.String(), Opened: k, InFlight: active, Waiting: waiting,
		MaxInFlight: h.supplier.policy.maxInFlight, LastFailure: h.lastCause}
	if state == Open {
		hs.OpenUntil = &until
	}
	if !h.lastAt.IsZero() {
		at := h.lastAt
		hs.LastAt = &at
	}
	return hs
}

// Health is degraded while the configured Redis is unreachable (quotas
// are then each instance's own), ok otherwise; for /health.
func (l *Limiter) Health() aggregator.Health {
	sh := l.sharedNow()
	if sh == nil {
		return aggregator.Health{Status: aggregator.HealthOK}
	}
	return sh.health(l.clock.Now())
}

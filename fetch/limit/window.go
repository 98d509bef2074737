package limit

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Window is one limit of a quota: at most N calls in any window of length Per.
type Window struct {
	N    int
	Per  time.Duration
	Spec string // as configured, e.g. "5000/24h", for messages
}

// Rate is a supplier's quota: every window holds at once. Empty: no quota.
type Rate []Window

func (r Rate) String() string {
	if len(r) == 0 {
		return "none"
	}
	specs := make([]string, len(r))
	for i, w := range r {
		specs[i] = w.Spec
	}
	return strings.Join(specs, ",")
}

// longest is the longest window's length: what a log must remember.
func (r Rate) longest() time.Duration {
	var d time.Duration
	for _, w := range r {
		d = max(d, w.Per)
	}
	return d
}

// ParseRate reads a quota: "N/unit" or "N/<count><unit>" with unit s, m,
// h or d (or a Go duration such as "90s"), several separated by commas;
// "none" or "" is no quota. "5000/24h" and "5000/d" are the same window.
// A window holds in any stretch of its length (a sliding window), so the
// whole N may be spent at once: a burst is bounded by adding a shorter
// window, "5000/d,20/s".
func ParseRate(spec string) (Rate, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" || strings.EqualFold(spec, "none") {
		return nil, nil
	}
	var r Rate
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		count, per, ok := strings.Cut(part, "/")
		n, err := strconv.Atoi(strings.TrimSpace(count))
		if !ok || err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not N/window (50/s, 300/m, 5000/24h, 5000/d)", part)
		}
		d, err := parseWindow(strings.TrimSpace(per))
		if err != nil {
			return nil, fmt.Errorf("%q: %w", part, err)
		}
		r = append(r, Window{N: n, Per: d, Spec: part})
	}
	sort.Slice(r, func(i, j int) bool { return r[i].Per > r[j].Per }) // the longest first: its message matters most
	return r, nil
}

func parseWindow(s string) (time.Duration, error) {
	units := map[byte]time.Duration{'s': time.Second, 'm': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour}
	if s != "" {
		if unit, ok := units[s[len(s)-1]]; ok {
			n := 1
			if digits := s[:len(s)-1]; digits != "" {
				var err error
				if n, err = strconv.Atoi(digits); err != nil || n <= 0 {
					n = 0
				}
			}
			if n > 0 {
				return time.Duration(n) * unit, nil
			}
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("the window %q is not s, m, h, d, 24h or a duration such as 90s", s)
	}
	return d, nil
}

// callLog is a quota kept in memory: the times of the calls it let through
// within the longest window, oldest first (a sliding log). Not safe for
// concurrent use; its owner locks.
type callLog struct {
	buf  []time.Time
	head int // buf[head:] are the calls still in the window
}

// live are the calls still in the window, oldest first.
func (l *callLog) live() []time.Time { return l.buf[l.head:] }

// denial says which window a call is over and when it frees up.
type denial struct {
	window Window
	used   int
	frees  time.Time
}

// take records a call at now if every window of r has room, or says which
// window has none.
func (l *callLog) take(r Rate, now time.Time) *denial {
	if d := l.check(r, now); d != nil {
		return d
	}
	l.insert(now)
	return nil
}

// insert adds a call at now, in place should the clock have gone back.
func (l *callLog) insert(now time.Time) {
	l.buf = append(l.buf, now)
	for i := len(l.buf) - 1; i > l.head && l.buf[i-1].After(now); i-- {
		l.buf[i], l.buf[i-1] = l.buf[i-1], l.buf[i]
	}
}

// check is take without recording.
func (l *callLog) check(r Rate, now time.Time) *denial {
	l.trim(r.longest(), now)
	for _, w := range r {
		used := l.since(now.Add(-w.Per))
		if used >= w.N {
			// The call that frees a place is the N-th most recent in the window.
			live := l.live()
			return &denial{window: w, used: used, frees: live[len(live)-w.N].Add(w.Per)}
		}
	}
	return nil
}

// refund forgets one call recorded at t (a call that never went out).
func (l *callLog) refund(t time.Time) {
	for i := len(l.buf) - 1; i >= l.head; i-- {
		if l.buf[i].Equal(t) {
			l.buf = append(l.buf[:i], l.buf[i+1:]...)
			return
		}
	}
}

// since counts the calls after t.
func (l *callLog) since(t time.Time) int {
	live := l.live()
	return len(live) - sort.Search(len(live), func(i int) bool { return live[i].After(t) })
}

// trim forgets calls older than keep before now: the window's start moves
// on, and the array is compacted once half of it is dead, so a call costs
// O(1) amortised whatever N is.
func (l *callLog) trim(keep time.Duration, now time.Time) {
	live := l.live()
	l.head += sort.Search(len(live), func(i int) bool { return live[i].After(now.Add(-keep)) })
	if l.head > 0 && l.head >= len(l.buf)/2 {
		n := copy(l.buf, l.buf[l.head:])
		l.buf, l.head = l.buf[:n], 0
	}
}

// left is how many calls each window of r allows now, for Snapshot.
func (l *callLog) left(r Rate, now time.Time) []int {
	l.trim(r.longest(), now)
	out := make([]int, len(r))
	for i, w := range r {
		out[i] = max(0, w.N-l.since(now.Add(-w.Per)))
	}
	return out
}

// record adds a call at now whatever the windows say (the calls Redis let
// through, kept so this instance knows its own when Redis goes away).
func (l *callLog) record(r Rate, now time.Time) {
	l.trim(r.longest(), now)
	l.insert(now)
}

package limit

import (
	"strings"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	for spec, want := range map[string][]Window{
		"50/s":        {{50, time.Second, "50/s"}},
		"300/m":       {{300, time.Minute, "300/m"}},
		"5000/24h":    {{5000, 24 * time.Hour, "5000/24h"}},
		"5000/d":      {{5000, 24 * time.Hour, "5000/d"}},
		"10/90s":      {{10, 90 * time.Second, "10/90s"}},
		"20/s,5000/d": {{5000, 24 * time.Hour, "5000/d"}, {20, time.Second, "20/s"}},
		"none":        nil,
		"":            nil,
	} {
		got, err := ParseRate(spec)
		if err != nil || len(got) != len(want) {
			t.Errorf("ParseRate(%q) = %v, %v", spec, got, err)
			continue
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("ParseRate(%q)[%d] = %+v, want %+v", spec, i, got[i], want[i])
			}
		}
	}
	for _, bad := range []string{"50", "0/s", "-1/s", "x/s", "50/w", "50/0s", "50/s,"} {
		if _, err := ParseRate(bad); err == nil || !strings.Contains(err.Error(), "50/s") && !strings.Contains(err.Error(), "window") {
			t.Errorf("ParseRate(%q): %v, want a clear error", bad, err)
		}
	}
}

// TestCallLogSliding: at most N in any window, wherever it starts; the
// denial names the full window and the time the N-th most recent call
// leaves it.
func TestCallLogSliding(t *testing.T) {
	r, _ := ParseRate("3/s,5/m")
	var l callLog
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	for _, ms := range []int{0, 400, 900} {
		if d := l.take(r, at(ms)); d != nil {
			t.Fatalf("call at %d ms refused: %+v", ms, d)
		}
	}
	d := l.take(r, at(999))
	if d == nil || d.window.Spec != "3/s" || d.used != 3 || !d.frees.Equal(at(1000)) {
		t.Fatalf("the 4th call in a second: %+v, want 3/s full until 1000 ms", d)
	}
	if d := l.take(r, at(1000)); d != nil {
		t.Fatalf("at 1000 ms the first call has left the second: %+v", d)
	}
	if d := l.take(r, at(1500)); d != nil {
		t.Fatalf("at 1500 ms: %+v", d)
	}
	d = l.take(r, at(2500))
	if d == nil || d.window.Spec != "5/m" || !d.frees.Equal(at(60000)) {
		t.Fatalf("the 6th call in a minute: %+v, want 5/m full until 60 s", d)
	}
	l.refund(at(1500))
	if d := l.take(r, at(2500)); d != nil {
		t.Fatalf("after a refund: %+v", d)
	}
	if left := l.left(r, at(61000)); left[0] != 4 || left[1] != 3 {
		t.Fatalf("left at 61 s: %v, want [4 3] (5/m first: only the call at 2.5 s is in its minute)", left)
	}
}

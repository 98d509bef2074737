package gcfloor

import (
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

const mb = 1 << 20

// goal is the heap goal Go would use with GOGC p (runtime/mgcpacer.go).
func goal(live, roots uint64, p int) uint64 {
	return max(live+(live+roots)*uint64(p)/100, minHeap*uint64(p)/100)
}

func TestPercent(t *testing.T) {
	for _, c := range []struct {
		floor, live, roots uint64
		base               int
	}{
		{32 * mb, 1 * mb, 1 * mb, 100},
		{32 * mb, 3 * mb, 1 * mb, 100},
		{32 * mb, 10 * mb, 2 * mb, 100},
		{32 * mb, 20 * mb, 4 * mb, 100},
		{32 * mb, 40 * mb, 4 * mb, 100},
		{32 * mb, 500 * mb, 4 * mb, 100},
		{32 * mb, 3 * mb, 1 * mb, 300},
		{16 * mb, 6 * mb, 512 << 10, 50},
	} {
		p := Percent(c.floor, c.live, c.roots, c.base)
		g := goal(c.live, c.roots, p)
		switch {
		case p < c.base:
			t.Errorf("%+v: GOGC %d below the base", c, p)
		case p > c.base && g < c.floor:
			t.Errorf("%+v: GOGC %d gives a goal of %d MB, under the floor", c, p, g/mb)
		case p > c.base && goal(c.live, c.roots, p-1) >= c.floor:
			t.Errorf("%+v: GOGC %d is more than the floor needs", c, p)
		case g > max(c.floor, goal(c.live, c.roots, c.base))*11/10:
			t.Errorf("%+v: GOGC %d gives a goal of %d MB, past both the floor and the base's goal", c, p, g/mb)
		}
	}
}

func read(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// waitFor collects garbage until cond holds: the tuner runs on the
// runtime's cleanup goroutine, after a collection.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: never happened (GOGC %d, heap goal %d MB, live %d MB)", what,
				read("/gc/gogc:percent"), read("/gc/heap/goal:bytes")/mb, read("/gc/heap/live:bytes")/mb)
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
}

// TestStart runs the tuner in this process: a small heap gets a goal at
// the floor, a heap past the floor gets GOGC=100 back, stop restores it.
func TestStart(t *testing.T) {
	t.Setenv("GOGC", "")
	const floor = 64 * mb
	stop := Start(floor)
	defer stop()
	waitFor(t, "a small heap's goal at the floor", func() bool {
		return read("/gc/heap/goal:bytes") >= floor && read("/gc/gogc:percent") > 100
	})

	big := make([][]byte, 0, 96)
	for range 96 {
		big = append(big, make([]byte, mb))
	}
	waitFor(t, "GOGC back to 100 with 96 MB live", func() bool { return read("/gc/gogc:percent") == 100 })
	if g := read("/gc/heap/goal:bytes"); g > 3*96*mb {
		t.Errorf("heap goal %d MB with 96 MB live: more than GOGC=100 gives", g/mb)
	}
	runtime.KeepAlive(big)

	stop()
	if p := read("/gc/gogc:percent"); p != 100 {
		t.Errorf("GOGC %d after stop, want 100", p)
	}
}

func TestOff(t *testing.T) {
	t.Setenv("GOGC", "off")
	stop := Start(64 * mb)
	stop()
	if _, ok := gogc(); ok {
		t.Error("GOGC=off is not seen as off")
	}
}

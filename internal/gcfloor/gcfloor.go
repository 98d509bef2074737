// Package gcfloor keeps Go's garbage collector from running while the
// heap is small. With the default GOGC=100 a collection comes each time the
// heap doubles, but never later than at 4 MB; a server whose live heap is a
// few MB and which allocates tens of MB a second (a busy aggregator: ~300
// small allocations per search) then collects 50 times a second, and each
// collection's fixed cost (stopping the world, scanning every goroutine's
// stack) added up to ~8% of its CPU in the collector alone.
//
// Start gives every collection a heap goal of at least the floor: while the
// live heap is small it raises GOGC just enough, after each collection, and
// once the live heap is large GOGC is the operator's (env GOGC, else 100)
// again, so a big heap still grows by GOGC percent, not more. The process
// may hold up to the floor in garbage, which is the price.
package gcfloor

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"sync/atomic"
)

// minHeap is Go's own floor at GOGC=100 (runtime.defaultHeapMinimum): the
// runtime scales it by GOGC/100, which is what lifts a small heap's goal.
const minHeap = 4 << 20

// Metrics read after each collection.
var names = []string{
	"/gc/heap/live:bytes",    // what the last collection marked live
	"/gc/scan/stack:bytes",   // and the stacks and globals it scanned,
	"/gc/scan/globals:bytes", // which GOGC applies to as well
}

type tuner struct {
	floor   uint64
	base    int // the GOGC to keep when the live heap is large
	current atomic.Int64
	samples []metrics.Sample // used by collected only
	stopped atomic.Bool
}

// sentinel is allocated to be collected: its cleanup runs once per
// collection. It has a pointer so that it is not a tiny object, which the
// runtime may keep alive with its neighbours.
type sentinel struct{ _ *byte }

// Start keeps each collection's heap goal at floor bytes or more. It does
// nothing when floor is 0 or env GOGC is "off" (no collections to space
// out). stop restores the GOGC it found.
func Start(floor uint64) (stop func()) {
	base, ok := gogc()
	if floor == 0 || !ok {
		return func() {}
	}
	t := &tuner{floor: floor, base: base}
	t.current.Store(int64(base))
	for _, n := range names {
		t.samples = append(t.samples, metrics.Sample{Name: n})
	}
	// Until the first collection the live heap is unknown: Go's own floor,
	// scaled, makes the first goal the floor.
	t.set(max(base, most(floor)))
	t.arm()
	return func() {
		if !t.stopped.Swap(true) {
			debug.SetGCPercent(t.base)
		}
	}
}

// Percent is GOGC for a heap with live bytes marked and roots bytes of
// stacks and globals: the least that puts the goal at floor or more (the
// goal is live + (live+roots)·GOGC/100, and never below 4 MB·GOGC/100),
// but not below base.
func Percent(floor, live, roots uint64, base int) int {
	if live >= floor {
		return base
	}
	need := int(((floor-live)*100 + live + roots - 1) / (live + roots))
	return max(base, min(need, most(floor)))
}

// most is the GOGC at which Go's own floor (4 MB·GOGC/100) is floor: past
// it the goal would be above the floor however small the heap.
func most(floor uint64) int { return int(floor * 100 / minHeap) }

func (t *tuner) arm() {
	runtime.AddCleanup(&sentinel{}, (*tuner).collected, t)
}

// collected runs on the runtime's cleanup goroutine after a collection.
func (t *tuner) collected() {
	if t.stopped.Load() {
		return
	}
	metrics.Read(t.samples)
	var v [3]uint64
	for i, s := range t.samples {
		if s.Value.Kind() == metrics.KindUint64 {
			v[i] = s.Value.Uint64()
		}
	}
	if v[0] > 0 {
		t.set(Percent(t.floor, v[0], v[1]+v[2], t.base))
	}
	t.arm()
}

func (t *tuner) set(p int) {
	if t.current.Swap(int64(p)) != int64(p) && !t.stopped.Load() {
		debug.SetGCPercent(p)
	}
}

// gogc is the GOGC the runtime started with (env GOGC, 100 by default);
// false when it is "off".
func gogc() (int, bool) {
	s := os.Getenv("GOGC")
	if s == "" {
		return 100, true
	}
	if s == "off" {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 100, true // the runtime ignores a bad value too
	}
	return n, true
}

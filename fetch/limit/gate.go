package limit

import (
	"context"
	"sync"
)

// gate caps the calls in flight to one host. x/sync's semaphore.Weighted
// has a fixed size; a reload must change the cap of a host with calls in
// flight and waiting, so this one can be resized.
type gate struct {
	mu      sync.Mutex
	limit   int // 0 = no cap
	active  int
	waiters []chan struct{} // FIFO; a closed channel is a slot handed over
}

// acquire takes a slot, waiting within ctx; waited tells whether it had to.
func (g *gate) acquire(ctx context.Context) (waited bool, err error) {
	g.mu.Lock()
	if g.limit == 0 || g.active < g.limit {
		g.active++
		g.mu.Unlock()
		return false, nil
	}
	ch := make(chan struct{})
	g.waiters = append(g.waiters, ch)
	g.mu.Unlock()
	select {
	case <-ch:
		return true, nil
	case <-ctx.Done():
		g.mu.Lock()
		defer g.mu.Unlock()
		select {
		case <-ch: // handed a slot just now: give it on
			g.active--
			g.handOver()
		default:
			g.waiters = removeWaiter(g.waiters, ch)
		}
		return true, ctx.Err()
	}
}

// tryAcquire takes a slot only if one is free now.
func (g *gate) tryAcquire() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.limit != 0 && g.active >= g.limit {
		return false
	}
	g.active++
	return true
}

func (g *gate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.active--
	g.handOver()
}

// resize sets the cap, letting waiters in if it grew.
func (g *gate) resize(limit int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.limit = limit
	g.handOver()
}

// handOver gives free slots to the oldest waiters; g.mu is held.
func (g *gate) handOver() {
	for len(g.waiters) > 0 && (g.limit == 0 || g.active < g.limit) {
		g.active++
		close(g.waiters[0])
		g.waiters = g.waiters[1:]
	}
}

// counts are the calls in flight and waiting.
func (g *gate) counts() (active, waiting int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.active, len(g.waiters)
}

func removeWaiter(ws []chan struct{}, ch chan struct{}) []chan struct{} {
	for i, w := range ws {
		if w == ch {
			return append(ws[:i], ws[i+1:]...)
		}
	}
	return ws
}

package fsm

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestTable checks every state against every event: the transitions the
// life cycle allows lead where the package doc says, and every other event
// is refused and leaves the machine where it was.
func TestTable(t *testing.T) {
	t.Parallel()
	// The package doc's picture, one arrow a line.
	arrows := `
		starting handshake ready
		ready recycle recycling
		recycling keep ready
		ready retire stopping
		recycling retire stopping
		stopping drained stopped
		starting kill ending
		ready kill ending
		recycling kill ending
		stopping kill ending
		stopped kill ending
		starting exit ending
		ready exit ending
		recycling exit ending
		stopping exit ending
		stopped exit ending
		ending gone exited`
	want := map[State]map[Event]State{}
	for _, line := range strings.Split(strings.TrimSpace(arrows), "\n") {
		var from, ev, to string
		if _, err := fmt.Sscan(line, &from, &ev, &to); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		f, e, s := named(t, from, stateNames[:]), named(t, ev, eventNames[:]), named(t, to, stateNames[:])
		if want[State(f)] == nil {
			want[State(f)] = map[Event]State{}
		}
		want[State(f)][Event(e)] = State(s)
	}
	for from := Starting; from < numStates; from++ {
		for ev := Handshake; ev < numEvents; ev++ {
			wantTo, allowed := want[from][ev]
			m := at(t, from)
			moved := m.Fire(ev)
			switch {
			case moved != allowed:
				t.Errorf("%s in %s: moved %v, want %v", ev, from, moved, allowed)
			case allowed && m.State() != wantTo:
				t.Errorf("%s in %s: now %s, want %s", ev, from, m.State(), wantTo)
			case !allowed && m.State() != from:
				t.Errorf("%s refused in %s, yet the machine went to %s", ev, from, m.State())
			}
			if to, ok := Next(from, ev); ok != allowed || (ok && to != wantTo) {
				t.Errorf("Next(%s, %s) = %s, %v; want %s, %v", from, ev, to, ok, wantTo, allowed)
			}
		}
	}
}

// named is the index of name in names.
func named(t *testing.T, name string, names []string) int {
	t.Helper()
	i := slices.Index(names, name)
	if i < 0 {
		t.Fatalf("no state or event %q", name)
	}
	return i
}

// at drives a machine from Starting to s through allowed events only.
func at(t *testing.T, s State) *Machine {
	t.Helper()
	paths := map[State][]Event{
		Starting:  nil,
		Ready:     {Handshake},
		Recycling: {Handshake, Recycle},
		Stopping:  {Handshake, Retire},
		Stopped:   {Handshake, Retire, Drained},
		Ending:    {Kill},
		Exited:    {Exit, Gone},
	}
	m := &Machine{}
	for _, ev := range paths[s] {
		if !m.Fire(ev) {
			t.Fatalf("reaching %s: %s refused in %s", s, ev, m.State())
		}
	}
	if m.State() != s {
		t.Fatalf("reached %s, want %s", m.State(), s)
	}
	return m
}

// TestPredicates: a worker gets new jobs in one state only, and has ended
// in the last two.
func TestPredicates(t *testing.T) {
	t.Parallel()
	for s := Starting; s < numStates; s++ {
		if got := s.TakesJobs(); got != (s == Ready) {
			t.Errorf("%s.TakesJobs() = %v", s, got)
		}
		if got := s.Ended(); got != (s == Ending || s == Exited) {
			t.Errorf("%s.Ended() = %v", s, got)
		}
	}
}

// TestFireConcurrent: of many goroutines firing the same event at once,
// exactly one moves the machine (the worker relies on it: one stop frame,
// one kill).
func TestFireConcurrent(t *testing.T) {
	t.Parallel()
	for round := 0; round < 100; round++ {
		m := at(t, Stopping)
		var wg sync.WaitGroup
		var mu sync.Mutex
		moved := 0
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if m.Fire(Drained) {
					mu.Lock()
					moved++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if moved != 1 || m.State() != Stopped {
			t.Fatalf("round %d: %d Fires moved the machine, now %s; want 1 and stopped", round, moved, m.State())
		}
	}
}

// TestNames: every state and event has a name for logs and /workers.
func TestNames(t *testing.T) {
	t.Parallel()
	for s := Starting; s <= numStates; s++ {
		if s.String() == "" {
			t.Errorf("state %d has no name", uint32(s))
		}
	}
	for e := Handshake; e <= numEvents; e++ {
		if e.String() == "" {
			t.Errorf("event %d has no name", uint8(e))
		}
	}
	if _, ok := Next(numStates, Kill); ok {
		t.Error("an unknown state moved")
	}
}

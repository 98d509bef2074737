package pool

import "testing"

func TestNextState(t *testing.T) {
	t.Parallel()
	states := []State{Starting, Ready, Stopping, Exited}
	// allowed[from][to]
	allowed := map[State]map[State]bool{
		Starting: {Ready: true, Stopping: true, Exited: true},
		Ready:    {Stopping: true, Exited: true},
		Stopping: {Exited: true},
		Exited:   {},
	}
	for _, from := range states {
		for _, to := range states {
			if got, want := next(from, to), allowed[from][to]; got != want {
				t.Errorf("next(%s, %s) = %v, want %v", from, to, got, want)
			}
		}
	}
	for _, s := range states {
		if s.String() == "" {
			t.Errorf("state %d has no name", int(s))
		}
	}
}

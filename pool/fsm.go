package pool

// State is where a worker is in its life (see next):
//
//	starting -> ready -> stopping -> exited
//	starting -> stopping (a reload or Close while it shakes hands)
//	any      -> exited   (the process died or was killed)
//
// A ready worker is idle with no job in flight, busy with one or more.
type State int

// Worker states.
const (
	Starting State = iota
	Ready
	Stopping
	Exited
)

func (s State) String() string {
	return [...]string{"starting", "ready", "stopping", "exited"}[s]
}

// next reports whether a worker may go from one state to another; it keeps
// the state machine apart from process I/O so it can be tested on its own.
func next(from, to State) bool {
	switch to {
	case Ready:
		return from == Starting
	case Stopping:
		return from == Starting || from == Ready
	case Exited:
		return from != Exited
	}
	return false
}

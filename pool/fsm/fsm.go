// Package fsm is the life cycle of a PHP worker as one table of states and
// events. Every change of a worker's state goes through Machine.Fire, which
// refuses what the table does not allow, so the life cycle reads in one
// place and is tested on its own: the package knows nothing of processes,
// pipes or jobs (in the spirit of roadrunner-server/pool's fsm).
//
// The life of a worker:
//
//	Starting --Handshake--> Ready --Recycle--> Recycling --Keep--> Ready
//	Ready, Recycling --Retire--> Stopping --Drained--> Stopped
//	Starting, Ready, Recycling, Stopping, Stopped --Kill, Exit--> Ending
//	Ending --Gone--> Exited
//
// Only a Ready worker takes new jobs. Refusals are how late events are
// told apart: a Kill of a worker already Ending, a Retire of one that died
// meanwhile, a Keep of one killed while its replacement started.
package fsm

import (
	"fmt"
	"sync/atomic"
)

// State is where a worker is in its life.
type State uint32

// The states of a worker.
const (
	Starting  State = iota // its process runs; Go waits for its handshake
	Ready                  // it takes jobs (idle or busy: how many is not its state)
	Recycling              // it asked its slot for a replacement (max-jobs, max-memory): no new jobs, those in flight go on
	Stopping               // retired (replaced, reloaded): no new jobs, those in flight run to their end
	Stopped                // a retired worker's last job left: it was asked to exit
	Ending                 // killed, or its process ended: what it wrote is read to the end
	Exited                 // its process is gone and every job it held has its answer
	numStates
)

var stateNames = [numStates]string{"starting", "ready", "recycling", "stopping", "stopped", "ending", "exited"}

func (s State) String() string {
	if s < numStates {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint32(s))
}

// TakesJobs reports whether a worker in state s may be given a new job.
func (s State) TakesJobs() bool { return s == Ready }

// Ended reports whether the worker's process was killed or has ended: no
// frame comes any more but those already on their way.
func (s State) Ended() bool { return s == Ending || s == Exited }

// Event is what happens to a worker.
type Event uint8

// The events of a worker's life.
const (
	Handshake Event = iota // it announced itself: it speaks the protocol
	Recycle                // it asks to be replaced (it reached max-jobs or max-memory)
	Keep                   // its replacement could not start: it serves on
	Retire                 // its replacement is up, or the code is reloaded: finish, then exit
	Drained                // the last job of a retired worker left: ask it to exit
	Kill                   // it is killed (a stuck job, a broken stream, no pong, the runner closing)
	Exit                   // its process ended
	Gone                   // every job it held has its answer
	numEvents
)

var eventNames = [numEvents]string{"handshake", "recycle", "keep", "retire", "drained", "kill", "exit", "gone"}

func (e Event) String() string {
	if e < numEvents {
		return eventNames[e]
	}
	return fmt.Sprintf("event(%d)", uint8(e))
}

// table is the life cycle: table[from][event] is the state the event leads
// to; an event missing under a state is refused there.
var table = map[State]map[Event]State{
	Starting:  {Handshake: Ready, Kill: Ending, Exit: Ending},
	Ready:     {Recycle: Recycling, Retire: Stopping, Kill: Ending, Exit: Ending},
	Recycling: {Keep: Ready, Retire: Stopping, Kill: Ending, Exit: Ending},
	Stopping:  {Drained: Stopped, Kill: Ending, Exit: Ending},
	Stopped:   {Kill: Ending, Exit: Ending},
	Ending:    {Gone: Exited},
	Exited:    {},
}

// Next is the state event leads to from state from; ok is false when the
// table refuses the event there.
func Next(from State, event Event) (to State, ok bool) {
	if to, ok = table[from][event]; !ok {
		return from, false
	}
	return to, true
}

// Machine is one worker's state. Fire changes it; State reads it without a
// lock (the pool's choice of a worker for a job reads it on every job).
// The zero Machine is Starting.
type Machine struct {
	state atomic.Uint32
}

// State is the current state.
func (m *Machine) State() State { return State(m.state.Load()) }

// Fire applies event: it moves the machine to the state the table gives
// and returns true, or leaves it where it is and returns false when the
// table refuses the event in the current state. Concurrent Fires are
// safe: each sees the state the one before it left.
func (m *Machine) Fire(event Event) bool {
	for {
		from := m.state.Load()
		to, ok := Next(State(from), event)
		if !ok {
			return false
		}
		if m.state.CompareAndSwap(from, uint32(to)) {
			return true
		}
	}
}

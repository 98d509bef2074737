package server

import "time"

// spareIdle is how long a goroutine that ran a value (a task, a session)
// waits for another one before it ends.
const spareIdle = time.Second

// spares runs each value on a goroutine that ran one before and now waits
// for the next, or else on a new one. A task's goroutine reads its PHP
// result itself and a session's runs its loop, and both need a bigger
// stack than a new goroutine gets: growing it (a copy) for every task
// and session was 5% of the server's CPU under load, and a reused
// goroutine has it already.
type spares[T any] struct {
	idle chan T
	run  func(T)
}

func newSpares[T any](run func(T)) *spares[T] {
	return &spares[T]{idle: make(chan T), run: run}
}

// launch runs v on a waiting goroutine, or a new one.
func (p *spares[T]) launch(v T) {
	select {
	case p.idle <- v:
	default:
		go p.serve(v)
	}
}

// serve runs v, then the values handed to it while it waits, until none
// comes for spareIdle.
func (p *spares[T]) serve(v T) {
	timer := time.NewTimer(spareIdle)
	defer timer.Stop()
	for {
		p.run(v)
		timer.Reset(spareIdle)
		select {
		case v = <-p.idle:
		case <-timer.C:
			return
		}
	}
}

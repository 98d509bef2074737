package pool

import (
	"time"

	"go.uber.org/zap"
)

// A slot of the Supervisor keeps one worker alive, one goroutine each:
// it starts the worker, replaces it when it dies or asks to be recycled,
// and on a reload starts the new one first and then retires the old one,
// so that code that cannot start leaves the old workers serving (SPEC §16).

// Timing of a slot.
const (
	// backoffMin and backoffMax bound the wait between failed worker starts,
	// so a broken worker file costs a log line per attempt, not a CPU.
	backoffMin = 100 * time.Millisecond
	backoffMax = 10 * time.Second
	// crashBackoff is the wait before starting again after a worker was
	// killed while it started: not a broken configuration, so no long wait.
	crashBackoff = 10 * time.Millisecond
)

// slot keeps one worker alive: start it (backing off while starts fail, at
// once again on a reload), replace it when it exits, and when a reload or
// the worker itself asks, start the replacement first and then retire the
// old one, which finishes its jobs.
func (s *Supervisor) slot() {
	defer s.wg.Done()
	var w *worker
	backoff := time.Duration(0)
	var tried uint64 // the generation this slot last failed to start for a reload
	for {
		gen, genCh := s.generation()
		if s.ctx.Err() != nil {
			if w != nil {
				s.stop(w)
			}
			return
		}
		if w == nil {
			nw, f := s.start(gen)
			if f != nil {
				backoff = s.backoff(backoff, f)
				if s.sleep(backoff, genCh) && s.generationChanged(gen) {
					backoff = 0 // a reload: the code may be fixed
				}
				continue
			}
			backoff, w = 0, nw
			continue
		}
		if w.gen != gen && tried != gen { // a reload: new worker first
			if f := s.replace(&w, gen, ReasonReload); f != nil {
				if !f.crash {
					tried = gen
				} else if !s.sleep(crashBackoff, nil) {
					continue
				}
			}
			continue
		}
		select {
		case <-w.gone:
			s.exited(w)
			w = nil
		case <-w.recycleAsked():
			if f := s.replace(&w, w.gen, w.recycleWhy()); f != nil {
				// Serve on rather than leave the slot empty; after a crash
				// at start it asks again after its next job, with code that
				// does not start it waits for a reload.
				w.keep(f.crash)
				if !f.crash {
					w.logger().Warn("cannot replace the worker: the code on disk does not start; "+
						"it serves on until a reload", zap.String("reason", string(w.recycleWhy())), zap.Error(f.err))
				}
			}
		case <-genCh:
		case <-s.ctx.Done():
		}
	}
}

// sleep waits d, or less when the runner closes or wake closes; false
// when the runner closes.
func (s *Supervisor) sleep(d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-wake:
	case <-s.ctx.Done():
		return false
	}
	return true
}

// replace starts a worker of generation gen in old's place and retires
// old gracefully; when the new one cannot start, old is kept and the
// failure returned.
func (s *Supervisor) replace(old **worker, gen uint64, why Reason) *startFailure {
	nw, f := s.start(gen)
	if f != nil {
		if why == ReasonReload && !f.crash {
			s.reloadFailed(gen, f.err)
		}
		return f
	}
	prev := *old
	*old = nw
	prev.retire(why)
	s.wg.Add(1)
	go s.reap(prev)
	return nil
}

// reap waits for a retired worker to exit (killing it on Close).
func (s *Supervisor) reap(w *worker) {
	defer s.wg.Done()
	select {
	case <-w.gone:
	case <-s.ctx.Done():
		s.stop(w)
		return
	}
	s.exited(w)
}

// stop kills a worker as the runner closes and waits for it.
func (s *Supervisor) stop(w *worker) {
	w.kill(ReasonShutdown)
	<-w.gone
	s.mu.Lock()
	delete(s.workers, w)
	s.mu.Unlock()
}

// start spawns a worker of generation gen and makes it available.
func (s *Supervisor) start(gen uint64) (*worker, *startFailure) {
	w, f := spawn(s.ctx, s.env, gen, s.freed)
	s.cfg.Metrics.workerStarted(f == nil)
	s.mu.Lock()
	defer s.mu.Unlock()
	if f != nil {
		if !f.crash && len(s.workers) == 0 {
			// Nothing serves: searches fail at once with the reason
			// rather than wait for a worker that cannot come.
			s.startErr = f.err
			s.broadcastLocked()
		}
		return nil, f
	}
	s.workers[w] = 0
	s.startErr = nil
	if s.reloadErr != nil && gen >= s.failedGen {
		s.cfg.Log.Info("reload succeeded: the new code starts", zap.Uint64("generation", gen))
		s.reloadErr = nil
	}
	s.broadcastLocked()
	w.logger().Debug("worker ready", zap.Uint64("generation", gen))
	return w, nil
}

// backoff logs a failed start and returns how long to wait before the next.
func (s *Supervisor) backoff(last time.Duration, f *startFailure) time.Duration {
	if f.crash {
		s.cfg.Log.Warn("worker killed while it started; starting another", zap.Error(f.err))
		return crashBackoff
	}
	next := min(max(2*last, backoffMin), backoffMax)
	s.cfg.Log.Error("worker start failed", zap.Error(f.err), zap.Duration("retry_in", next))
	return next
}

// exited records a worker that is gone.
func (s *Supervisor) exited(w *worker) {
	s.mu.Lock()
	delete(s.workers, w)
	closing := s.ctx.Err() != nil
	s.mu.Unlock()
	reason, _ := w.leftBecause()
	jobs := w.conv.finished()
	if closing || reason == ReasonShutdown {
		return
	}
	s.cfg.Metrics.workerReplaced(reason)
	lvl := zap.InfoLevel
	if reason == ReasonCrash || reason == ReasonProtocol {
		lvl = zap.WarnLevel
	}
	w.logger().Log(lvl, "worker exited", zap.String("reason", string(reason)),
		zap.Int64("jobs", jobs), zap.String("exit", w.proc.Exit().String()))
}

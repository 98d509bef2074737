package pool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/theaspect/aggregator/pool/fsm"
)

// Reading a worker's frames: whoever's turn it is (conversation.go) reads
// through the link and hands each frame to dispatch. The caller of a job
// alone on its worker reads for itself (readOwn); readLoop reads for
// everyone else, and sees the worker out when its stream ends.

// readOwn reads the worker's frames as its reader until j has its answer;
// false when ctx ended first or the stream did (then the caller waits for
// its answer as any other: readLoop takes over).
func (w *worker) readOwn(ctx context.Context, j *inflight) (answer, bool) {
	stop := context.AfterFunc(ctx, w.link.interrupt)
	defer func() {
		if !stop() { // it ran (or runs): its deadline must not stay
			w.link.resume()
		}
		w.conv.releaseReader()
	}()
	for {
		select {
		case a := <-j.answer:
			return a, true
		default:
		}
		f, err := w.link.next(func() bool { return ctx.Err() != nil })
		if err == errInterrupted {
			return answer{}, false
		}
		if err == nil {
			err = w.dispatch(f)
			if err != nil {
				w.setReason(ReasonProtocol)
			}
		} else {
			err = w.readFailed(f, err)
		}
		if err != nil {
			w.conv.streamEnded(err, victimOf(f, err))
			return answer{}, false
		}
	}
}

// readLoop reads the worker's frames whenever they are awaited and no
// job's caller reads them, until the stream ends (or a caller saw it end);
// then it waits for the process and answers every job still in flight.
func (w *worker) readLoop() {
	var victim uint32 // a job whose answer broke the stream
	var cause error
	for cause == nil {
		<-w.conv.wake
		cause, victim = w.readWhileNeeded()
	}
	w.kill(ReasonCrash)
	// The stream's end usually means the process has ended; a worker that
	// closed fd 4 but lives on has just been killed.
	<-w.proc.Done()
	w.link.close()
	w.failAll(cause, victim)
	w.life.Fire(fsm.Gone)
	close(w.gone)
}

// readWhileNeeded reads frames as the worker's reader until none is
// awaited; it returns why the stream ended, if it did.
func (w *worker) readWhileNeeded() (error, uint32) {
	for {
		on, end, victim := w.conv.readOn()
		if !on {
			return end, victim
		}
		f, err := w.link.next(nil)
		if err != nil {
			return w.readFailed(f, err), victimOf(f, err)
		}
		if err := w.dispatch(f); err != nil {
			w.setReason(ReasonProtocol)
			return err, 0
		}
	}
}

// readFailed records why the worker leaves when reading its stream failed
// and returns err.
func (w *worker) readFailed(f *inFrame, err error) error {
	switch {
	case errors.Is(err, errFrameTooLarge):
		w.setReason(ReasonOutputLimit)
	case !errors.Is(err, os.ErrClosed) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF):
		w.setReason(ReasonProtocol) // a corrupt frame: the stream is out of step
	}
	return err
}

// victimOf is the job whose answer was over the limit, when that is err.
func victimOf(f *inFrame, err error) uint32 {
	if errors.Is(err, errFrameTooLarge) {
		if o := f.options; len(o) >= 2 && o[0] == typeJob {
			return o[1]
		}
	}
	return 0
}

// dispatch hands one frame from the worker to whom it is for: a pong to
// ping, a result to its job (worker_job.go), a fetch() call to fetchcall.go.
func (w *worker) dispatch(f *inFrame) error {
	if f.flags&flagControl != 0 {
		select {
		case w.conv.pongs <- f.payload:
		default:
		}
		return nil
	}
	o := f.options
	if len(o) < 2 {
		return fmt.Errorf("a frame without type and job id: flags %#x", f.flags)
	}
	switch o[0] {
	case typeJob:
		return w.result(o, f.flags, f.payload)
	case typeFetch:
		return w.startFetch(o, f.payload)
	}
	return fmt.Errorf("a frame of unknown type %d", o[0])
}

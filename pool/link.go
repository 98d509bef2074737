package pool

import (
	"bufio"
	"errors"
	"os"
	"sync"
	"time"

	"github.com/roadrunner-server/goridge/v3/pkg/frame"
	"github.com/theaspect/aggregator"
)

// readBuffer buffers what a worker sends: a frame usually comes in one read(2).
const readBuffer = 8 << 10

// link is Go's side of a worker's frame stream (docs/PROTOCOL.md): frames
// to PHP on its fd 3, frames from PHP on its fd 4. Any goroutine may send,
// one frame at a time. One goroutine at a time reads, the one whose turn
// it is (conversation.go says whose): its wait for the next frame can be
// interrupted by a read deadline, yet a frame once begun is read to its
// end, so the stream never loses its step.
type link struct {
	toPHP   *os.File
	fromPHP *os.File
	src     *pipeSource   // fromPHP for in
	in      *bufio.Reader // buffered: a frame usually comes in one read(2)
	limit   int           // the largest payload accepted from PHP; 0 = any

	wmu  sync.Mutex // one frame at a time on toPHP
	wbuf []byte     // a job frame being written, under wmu
}

// newLink links to a started worker; outputLimit is a job's answer's
// (aggregator.limit.output-size), to which a result frame adds what the job
// echoed.
func newLink(wp *WorkerProcess, outputLimit int) *link {
	l := &link{toPHP: wp.ToPHP, fromPHP: wp.FromPHP}
	l.src = &pipeSource{f: l.fromPHP}
	l.in = bufio.NewReaderSize(l.src, readBuffer)
	if outputLimit > 0 {
		l.limit = outputLimit + maxStrayOutput
	}
	return l
}

// greeting reads the worker's first frame, its handshake, waiting at most wait.
func (l *link) greeting(wait time.Duration) (*inFrame, error) {
	_ = l.fromPHP.SetReadDeadline(time.Now().Add(wait))
	defer func() { _ = l.fromPHP.SetReadDeadline(time.Time{}) }()
	return readFrame(l.fromPHP, 1<<16)
}

// sendJob writes a job frame [typeJob, id, kind] to the worker: the bytes
// newFrame gives, encoded into a buffer the link keeps (most jobs are
// small), with no frame built.
func (l *link) sendJob(id uint32, job *aggregator.Job) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	b := appendFrame(l.wbuf[:0], flagRaw, job.Input, typeJob, id, uint32(job.Kind))
	_, err := l.toPHP.Write(b)
	if cap(b) <= 64<<10 {
		l.wbuf = b
	}
	return err
}

// send writes one frame to the worker.
func (l *link) send(f *frame.Frame) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	_, err := l.toPHP.Write(f.Bytes())
	return err
}

// aLongTimeAgo, as a read deadline, interrupts a read at once.
var aLongTimeAgo = time.Unix(1, 0)

// errInterrupted: the reader was asked to stop reading (its job's time ran out).
var errInterrupted = errors.New("interrupted")

// interrupt ends the reader's wait for the next frame (see next).
func (l *link) interrupt() { _ = l.fromPHP.SetReadDeadline(aLongTimeAgo) }

// resume clears an interrupt that was not taken.
func (l *link) resume() { _ = l.fromPHP.SetReadDeadline(time.Time{}) }

// next waits for a frame and reads it, as the worker's reader. Only the
// wait can be interrupted (interrupt, when interrupted then says so): once
// a frame has begun it is read to its end.
func (l *link) next(interrupted func() bool) (*inFrame, error) {
	for {
		l.src.interruptible = true
		_, err := l.in.Peek(1)
		l.src.interruptible = false
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, err
		}
		// A deadline meant for another reader, or for us.
		l.resume()
		if interrupted != nil && interrupted() {
			return nil, errInterrupted
		}
	}
	return readFrame(l.in, l.limit)
}

// closeRead closes the end PHP writes to: the reader sees the stream end
// (when a child that left the process group holds fd 4 open).
func (l *link) closeRead() { l.fromPHP.Close() }

// close closes both ends.
func (l *link) close() {
	l.toPHP.Close()
	l.fromPHP.Close()
}

// pipeSource reads a worker's pipe for its bufio.Reader: while a frame is
// read, a read deadline (set to interrupt a wait) is cleared and the read
// goes on.
type pipeSource struct {
	f             *os.File
	interruptible bool // the reader waits for a frame: a deadline ends the wait
}

func (p *pipeSource) Read(b []byte) (int, error) {
	for {
		n, err := p.f.Read(b)
		if n > 0 || p.interruptible || !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		_ = p.f.SetReadDeadline(time.Time{})
	}
}

package server

import (
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/theaspect/aggregator"
)

// Timing of one websocket connection.
const (
	// writeWait is how long one write may take; a browser that reads
	// slower than that is dropped. A held connection's writes share a
	// deadline renewed when less than half of it is left (flushConn.write),
	// so a write gets between writeWait/2 and writeWait.
	writeWait = 10 * time.Second
	// pongWait is how long the peer may stay silent (no message, no pong).
	pongWait = 60 * time.Second
	// pingPeriod sends pings often enough to get a pong within pongWait.
	pingPeriod = pongWait * 9 / 10
	// closeGrace is how long we wait for the browser to answer our close frame.
	closeGrace = time.Second
)

// outbox is a connection's bounded send queue. The session pushes, the
// writer goroutine takes; a browser that does not read fills it, and then
// push fails instead of memory growing. A message counts against the
// limits from push until the writer has written it.
type outbox struct {
	mu         sync.Mutex
	msgs       [][]byte // pushed, not taken by the writer yet
	count      int      // messages pushed and not written yet
	bytes      int      // their bytes
	limit      int      // most messages; 0 = no limit
	limitBytes int      // most bytes; 0 = no limit
	closing    bool
	closeCode  int
	closeText  string
	dead       bool // the writer gave up: drop everything
	notify     chan struct{}
}

func newOutbox(limit, limitBytes int) *outbox {
	return &outbox{limit: limit, limitBytes: limitBytes, notify: make(chan struct{}, 1)}
}

// Why a push failed: the limit it would have passed.
const (
	fullCount = aggregator.LimitSendQueue
	fullBytes = aggregator.LimitSendQueueBytes
)

// push queues a message for the next signal (the session signals once per
// batch of events it handled, so that e.g. a supplier's items and its
// SUCCESS leave with one write(2)); when the queue is full it returns which
// limit refused it. One message into an empty queue is always taken, whatever
// its size (aggregator.limit.output-size bounds it). Once the connection is
// closing or dead the message is dropped and push reports success: nobody
// can read it, and the session is ending already.
func (o *outbox) push(m []byte) (full aggregator.Limit) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.dead || o.closing {
		return ""
	}
	if o.count > 0 {
		if o.limit > 0 && o.count >= o.limit {
			return fullCount
		}
		if o.limitBytes > 0 && o.bytes+len(m) > o.limitBytes {
			return fullBytes
		}
	}
	o.msgs = append(o.msgs, m)
	o.count++
	o.bytes += len(m)
	if o.bytes >= flushChunk {
		// Enough for a write of its own: the writer starts now, so that
		// a big answer flows while the rest of it is queued.
		o.signal()
	}
	return ""
}

// queued reports the messages and bytes pushed and not written yet.
func (o *outbox) queued() (count, bytes int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.count, o.bytes
}

// close queues the close frame after the messages already queued.
func (o *outbox) close(code int, text string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closing {
		return
	}
	o.closing, o.closeCode, o.closeText = true, code, text
	o.signal()
}

// signal wakes the writer for what is queued.
func (o *outbox) signal() {
	select {
	case o.notify <- struct{}{}:
	default:
	}
}

// take returns the queued messages and whether the close frame is due.
func (o *outbox) take() (msgs [][]byte, closing bool, code int, text string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	msgs, o.msgs = o.msgs, nil
	return msgs, o.closing, o.closeCode, o.closeText
}

// written frees a taken message's place in the queue.
func (o *outbox) written(m []byte) {
	o.mu.Lock()
	o.count--
	o.bytes -= len(m)
	o.mu.Unlock()
}

func (o *outbox) kill() {
	o.mu.Lock()
	o.dead, o.msgs, o.count, o.bytes = true, nil, 0, 0
	o.mu.Unlock()
}

// writeLoop is the connection's only writer: queued messages, pings, and
// finally the close frame. It ends after closing the connection. What is
// queued goes out with one write(2) when the connection can be held
// (flush.go).
func writeLoop(c *websocket.Conn, out *outbox, readerDone <-chan struct{}) {
	ticker := time.NewTicker(pingPeriod)
	defer ticker.Stop()
	defer c.Close()
	held := heldConn(c)
	for {
		select {
		case <-out.notify:
			msgs, closing, code, text := out.take()
			if held != nil {
				held.hold() // its writes get their deadline in flushConn.write
			} else {
				_ = c.SetWriteDeadline(time.Now().Add(writeWait))
			}
			for i, m := range msgs {
				var err error
				if held != nil {
					err = held.writeText(m)
				} else {
					err = c.WriteMessage(websocket.TextMessage, m)
				}
				if err != nil {
					out.kill()
					return
				}
				out.written(m)
				msgs[i] = nil // a written message is garbage now, not when the batch is done
			}
			if closing {
				msg := websocket.FormatCloseMessage(code, text)
				_ = c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(writeWait))
			}
			if held != nil && held.flush() != nil {
				out.kill()
				return
			}
			if closing {
				select { // let the browser answer the close handshake
				case <-readerDone:
				case <-time.After(closeGrace):
				}
				return
			}
		case <-ticker.C:
			if err := c.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)); err != nil {
				out.kill()
				return
			}
		case <-readerDone:
			// The browser is gone (or broke the protocol): nothing more
			// can be delivered; the session ends on its own.
			out.kill()
			return
		}
	}
}

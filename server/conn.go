package server

import (
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Timing of one websocket connection.
const (
	// writeWait is how long one message may take to write; a browser that
	// reads slower than that is dropped.
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
// push fails instead of memory growing.
type outbox struct {
	mu        sync.Mutex
	msgs      [][]byte
	limit     int
	closing   bool
	closeCode int
	closeText string
	dead      bool // the writer gave up: drop everything
	notify    chan struct{}
}

func newOutbox(limit int) *outbox {
	return &outbox{limit: limit, notify: make(chan struct{}, 1)}
}

// push queues a message; false when the queue is full.
func (o *outbox) push(m []byte) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.dead || o.closing {
		return true
	}
	if o.limit > 0 && len(o.msgs) >= o.limit {
		return false
	}
	o.msgs = append(o.msgs, m)
	o.signal()
	return true
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

func (o *outbox) kill() {
	o.mu.Lock()
	o.dead, o.msgs = true, nil
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
				held.hold()
			}
			_ = c.SetWriteDeadline(time.Now().Add(writeWait))
			for _, m := range msgs {
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

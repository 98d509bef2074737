package server

import (
	"bufio"
	"encoding/binary"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// gorilla/websocket writes every frame with its own write(2). A search
// sends its messages in bursts (3 PENDING at once, then 3 SENDING and a
// SUCCESS per supplier), so the writer holds the connection while it
// writes what is queued and sends it all with one write(2): flushConn.

// flushChunk is how much a held connection buffers before it writes
// anyway; a message at least this big is written straight through.
const flushChunk = 16 << 10

// flushBufs are the buffers of held connections: a connection has one only
// while its writer holds it, so 10,000 idle sessions hold none.
var flushBufs = sync.Pool{New: func() any { b := make([]byte, 0, flushChunk); return &b }}

// flushConn is a websocket's connection that its writer can hold: what
// gorilla writes meanwhile (frames, and control frames from the reader's
// ping and close handlers) is kept and written at flush.
type flushConn struct {
	net.Conn
	mu      sync.Mutex
	holding bool
	buf     *[]byte // while holding
	err     error   // a failed write: every later one fails too
	// deadline is the connection's write deadline as last set. write sets
	// it only when less than half of writeWait is left: a deadline is a
	// runtime timer reset, and one per session mostly suffices.
	deadline time.Time
}

// hold starts keeping writes.
func (c *flushConn) hold() {
	c.mu.Lock()
	c.holding = true
	if c.buf == nil {
		c.buf = flushBufs.Get().(*[]byte)
	}
	c.mu.Unlock()
}

// flush writes what was kept, with one write(2), and stops keeping.
func (c *flushConn) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.holding = false
	err := c.writeKept()
	if c.buf != nil {
		if cap(*c.buf) <= 4*flushChunk {
			*c.buf = (*c.buf)[:0]
			flushBufs.Put(c.buf)
		}
		c.buf = nil
	}
	return err
}

func (c *flushConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if !c.holding {
		return c.Conn.Write(p)
	}
	if len(*c.buf)+len(p) > flushChunk {
		if err := c.writeKept(); err != nil {
			return 0, err
		}
		if len(p) >= flushChunk {
			return c.write(p)
		}
	}
	*c.buf = append(*c.buf, p...)
	return len(p), nil
}

// writeText queues one text message as a websocket frame, as gorilla's
// WriteMessage writes it on a server connection without compression (FIN,
// opcode 1, unmasked, the shortest length encoding), without going through
// gorilla's message writer: no pooled buffer taken and returned per
// message, no copy into it. The connection must be held; a frame is never
// split by another writer (Write takes the same lock).
func (c *flushConn) writeText(msg []byte) error {
	var head [10]byte
	n := len(msg)
	h := head[:2]
	head[0] = 0x81 // FIN, text
	switch {
	case n <= 125:
		head[1] = byte(n)
	case n <= 0xFFFF:
		head[1] = 126
		h = binary.BigEndian.AppendUint16(head[:2], uint16(n))
	default:
		head[1] = 127
		h = binary.BigEndian.AppendUint64(head[:2], uint64(n))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	if len(*c.buf)+len(h)+n > flushChunk {
		if err := c.writeKept(); err != nil {
			return err
		}
		if len(h)+n >= flushChunk {
			*c.buf = append(*c.buf, h...)
			if err := c.writeKept(); err != nil {
				return err
			}
			_, err := c.write(msg)
			return err
		}
	}
	*c.buf = append(*c.buf, h...)
	*c.buf = append(*c.buf, msg...)
	return nil
}

// SetWriteDeadline: gorilla sets one before each frame; while the
// connection is held each write(2) gets its own (see write).
func (c *flushConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.holding {
		return nil
	}
	c.deadline = t
	return c.Conn.SetWriteDeadline(t)
}

// writeKept writes the kept bytes; c.mu is held.
func (c *flushConn) writeKept() error {
	if c.buf == nil || len(*c.buf) == 0 {
		return c.err
	}
	_, err := c.write(*c.buf)
	*c.buf = (*c.buf)[:0]
	return err
}

// write writes p with at least writeWait/2 for it (gorilla gave each
// message writeWait); c.mu is held.
func (c *flushConn) write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if now := time.Now(); c.deadline.Sub(now) < writeWait/2 {
		c.deadline = now.Add(writeWait)
		_ = c.Conn.SetWriteDeadline(c.deadline)
	}
	n, err := c.Conn.Write(p)
	c.err = err
	return n, err
}

// heldConn is the connection under a websocket, when it can be held.
func heldConn(c *websocket.Conn) *flushConn {
	fc, _ := c.NetConn().(*flushConn)
	return fc
}

// upgrade upgrades a request to a websocket on a flushConn.
func (s *Server) upgrade(w http.ResponseWriter, r *http.Request) (*websocket.Conn, error) {
	return s.upgrader.Upgrade(flushHijacker{w}, r, nil)
}

// flushHijacker hands gorilla the hijacked connection as a flushConn.
type flushHijacker struct{ http.ResponseWriter }

func (h flushHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	return &flushConn{Conn: c}, rw, nil
}

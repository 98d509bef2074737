package server

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// recConn is a net.Conn that records what is written to it.
type recConn struct {
	net.Conn // nil: only the methods below are used
	mu       sync.Mutex
	out      bytes.Buffer
	writes   int
}

func (c *recConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	return c.out.Write(p)
}
func (c *recConn) Read([]byte) (int, error)         { select {} }
func (c *recConn) Close() error                     { return nil }
func (c *recConn) SetDeadline(time.Time) error      { return nil }
func (c *recConn) SetReadDeadline(time.Time) error  { return nil }
func (c *recConn) SetWriteDeadline(time.Time) error { return nil }
func (c *recConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *recConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *recConn) bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.out.Bytes()...)
}
func (c *recConn) count() int { c.mu.Lock(); defer c.mu.Unlock(); return c.writes }
func (c *recConn) reset()     { c.mu.Lock(); defer c.mu.Unlock(); c.out.Reset(); c.writes = 0 }

// hijackRecorder lets gorilla's Upgrade hijack a recConn (wrapped by wrap).
type hijackRecorder struct {
	*httptest.ResponseRecorder
	conn net.Conn
}

func (h hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return h.conn, bufio.NewReadWriter(bufio.NewReader(strings.NewReader("")), bufio.NewWriter(h.conn)), nil
}

// upgraded is a server websocket on a recording connection, held by a
// flushConn when held is set.
func upgraded(t *testing.T, held bool) (*websocket.Conn, *recConn) {
	t.Helper()
	rec := &recConn{}
	var conn net.Conn = rec
	if held {
		conn = &flushConn{Conn: rec}
	}
	r := httptest.NewRequest(http.MethodGet, "/ws", nil)
	r.Header.Set("Connection", "Upgrade")
	r.Header.Set("Upgrade", "websocket")
	r.Header.Set("Sec-WebSocket-Version", "13")
	r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	up := websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 4096, WriteBufferPool: &sync.Pool{}}
	c, err := up.Upgrade(hijackRecorder{httptest.NewRecorder(), conn}, r, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec.reset() // the handshake
	return c, rec
}

// TestWriteTextIsGorillasFrame: a held connection puts on the wire exactly
// the bytes gorilla's WriteMessage does, for every length encoding, and the
// close frame after them, in one write when they fit.
func TestWriteTextIsGorillasFrame(t *testing.T) {
	var msgs [][]byte
	for _, n := range []int{0, 1, 125, 126, 127, 4000, 4096, 65535, 65536, 70000} {
		msgs = append(msgs, bytes.Repeat([]byte{'a' + byte(n%26)}, n))
	}
	closeMsg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")

	plain, plainRec := upgraded(t, false)
	for _, m := range msgs {
		if err := plain.WriteMessage(websocket.TextMessage, m); err != nil {
			t.Fatal(err)
		}
	}
	_ = plain.WriteControl(websocket.CloseMessage, closeMsg, time.Now().Add(time.Second))

	c, rec := upgraded(t, true)
	held := heldConn(c)
	if held == nil {
		t.Fatal("the upgraded connection is not a flushConn")
	}
	held.hold()
	for _, m := range msgs {
		if err := held.writeText(m); err != nil {
			t.Fatal(err)
		}
	}
	_ = c.WriteControl(websocket.CloseMessage, closeMsg, time.Now().Add(time.Second))
	if err := held.flush(); err != nil {
		t.Fatal(err)
	}
	if got, want := rec.bytes(), plainRec.bytes(); !bytes.Equal(got, want) {
		t.Fatalf("held connection wrote %d bytes, gorilla %d; first difference at %d", len(got), len(want), firstDiff(got, want))
	}
	t.Logf("%d frames: gorilla %d writes, held %d", len(msgs)+1, plainRec.count(), rec.count())

	// Small messages and the close frame: one write.
	c, rec = upgraded(t, true)
	held = heldConn(c)
	// Not held: gorilla's writes go straight through.
	_ = c.WriteControl(websocket.PingMessage, nil, time.Now().Add(time.Second))
	if n := rec.count(); n != 1 {
		t.Errorf("a ping on a connection not held took %d writes, want 1", n)
	}
	rec.reset()
	held.hold()
	for i := 0; i < 15; i++ {
		_ = held.writeText([]byte(`{"_session":"1","_task":"ITEMS","_id":2,"_status":"SENDING"}`))
	}
	_ = c.WriteControl(websocket.CloseMessage, closeMsg, time.Now().Add(time.Second))
	_ = held.flush()
	if n := rec.count(); n != 1 {
		t.Errorf("15 messages and a close took %d writes, want 1", n)
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

package server

import (
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/theaspect/aggregator"
	"go.uber.org/zap"
)

// Timing of the accept loop under pressure.
const (
	// logEvery: refusals and running out of descriptors are logged once
	// per interval, with a count, so a flood of connections is not also a
	// flood of log lines.
	logEvery = 10 * time.Second
	// fdWait is how long Accept waits before trying again when no
	// descriptor is left, not even the reserve: one comes back when a
	// refused connection or a session closes.
	fdWait = 50 * time.Millisecond
	// refuseWait bounds each wait of a connection refused over the cap:
	// for its request (an HTTP client takes an answer that comes before
	// it has written its request for garbage), then for the client to
	// read the 503 and close (closing first, with data unread, would
	// reset the connection and could lose the answer).
	refuseWait = time.Second
	// shedWait is refuseWait when no descriptor is left: the accept loop
	// waits itself, so only briefly, and then closes at once. Clients
	// that waited in the backlog have sent their request long before.
	shedWait = 100 * time.Millisecond
)

// maxRefusing bounds the refusals over the cap that wait for their client
// at once, each in its goroutine holding a descriptor; past it the accept
// loop refuses as it does with no descriptor left, which holds a flood
// back in the kernel's backlog instead of spending descriptors on it.
const maxRefusing = 64

// refusal is the whole answer to a connection over the limit, whatever
// its request.
var refusal = []byte("HTTP/1.1 503 Service Unavailable\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\nRetry-After: 1\r\nConnection: close\r\n" +
	"Content-Length: 21\r\n\r\ntoo many connections\n")

// Listener counts every connection a net.Listener accepts, caps those it
// hands on, and keeps accepting when the process runs out of file
// descriptors. A connection over the cap, or one taken in while no
// descriptor is left, gets an immediate 503 with Retry-After and is
// closed. Accept is called by one goroutine (http.Server.Serve), which
// owns the reserve and the log state.
type Listener struct {
	net.Listener
	srv      *Server
	name     string // main or ops, the metrics' label
	max      int    // connections handed on at once; 0 = no cap
	limit    string // what sets max, for the log
	open     atomic.Int64
	served   atomic.Int64
	refusing atomic.Int32     // refusals waiting for their client
	gauge    prometheus.Gauge // aggregator_connections_open{listener=name}

	// owned by the Accept goroutine
	reserve   *os.File // a descriptor held back: closed, it lets one connection in to be refused
	exhausted bool     // descriptors ran out since the last normal accept
	fdErrs    tally
	overCap   tally
}

// tally counts events between two log lines.
type tally struct {
	n    int
	said time.Time
}

// note counts one event and reports how many to log now, or 0 when the
// last line was less than logEvery ago.
func (t *tally) note(now time.Time) int {
	t.n++
	if !t.said.IsZero() && now.Sub(t.said) < logEvery {
		return 0
	}
	n := t.n
	t.n, t.said = 0, now
	return n
}

// Listen wraps ln: its connections are counted in
// aggregator_connections_open{listener=name} and at most max (0: no cap)
// are served at once; limit names what sets max, for the log. The reserve
// descriptor lives as long as the process.
func (s *Server) Listen(ln net.Listener, name string, max int, limit string) *Listener {
	l := &Listener{Listener: ln, srv: s, name: name, max: max, limit: limit,
		gauge: s.metrics.connOpen.WithLabelValues(name)}
	l.reserve, _ = os.Open(os.DevNull)
	return l
}

// Accept returns the next connection to serve. Connections over the cap
// are refused here; running out of descriptors sheds load instead of
// spinning: the reserve is freed to take one connection in, which is
// refused if the reserve cannot be had back.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !fdExhausted(err) {
				return nil, err
			}
			if c, err = l.acceptWithReserve(err); err != nil {
				return nil, err
			}
			if c == nil {
				continue
			}
		} else if l.exhausted {
			l.exhausted = false
			l.srv.log.Info("file descriptors available again", zap.String("listener", l.name))
		}
		tc := l.track(c)
		if l.max > 0 && l.served.Load() >= int64(l.max) {
			l.srv.metrics.limitHit(aggregator.LimitConnections)
			l.srv.metrics.connRefused.WithLabelValues(l.name, "limit").Inc()
			if n := l.overCap.note(time.Now()); n > 0 {
				l.srv.log.Warn("too many connections, refusing with 503", zap.String("listener", l.name),
					zap.String("limit", l.limit+"="+strconv.Itoa(l.max)), zap.Int("refused", n))
			}
			if l.refusing.Load() >= maxRefusing {
				tc.refuse(shedWait, false)
				continue
			}
			l.refusing.Add(1)
			go func() {
				defer l.refusing.Add(-1)
				tc.refuse(refuseWait, true)
			}()
			continue
		}
		tc.served = true
		l.served.Add(1)
		return tc, nil
	}
}

// acceptWithReserve handles an accept that failed for lack of
// descriptors: it returns a connection to serve, or nil to try again.
func (l *Listener) acceptWithReserve(cause error) (net.Conn, error) {
	l.exhausted = true
	l.srv.metrics.fdExhausted.WithLabelValues(l.name).Inc()
	if n := l.fdErrs.note(time.Now()); n > 0 {
		l.srv.log.Error("out of file descriptors: refusing connections with 503", zap.String("listener", l.name),
			zap.Error(cause), zap.Int("accept_errors", n), zap.Int64("open_connections", l.open.Load()))
	}
	if l.reserve == nil {
		time.Sleep(fdWait)
		l.reserve, _ = os.Open(os.DevNull)
		return nil, nil
	}
	l.reserve.Close()
	l.reserve = nil
	c, err := l.Listener.Accept()
	if err != nil {
		if fdExhausted(err) {
			return nil, nil // another thread took the descriptor
		}
		return nil, err
	}
	if l.reserve, err = os.Open(os.DevNull); err == nil {
		return c, nil // descriptors came back meanwhile: serve it
	}
	// Still none to spare: refuse it here and now, which frees its
	// descriptor for the reserve, and go on to the next one waiting.
	l.srv.metrics.connRefused.WithLabelValues(l.name, "no_fds").Inc()
	l.track(c).refuse(shedWait, false)
	l.reserve, _ = os.Open(os.DevNull)
	return nil, nil
}

// fdExhausted says whether an accept failed for lack of file descriptors,
// of the process (EMFILE) or of the system (ENFILE).
func fdExhausted(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// track counts a connection open until it is closed.
func (l *Listener) track(c net.Conn) *conn {
	l.open.Add(1)
	l.gauge.Inc()
	return &conn{Conn: c, l: l}
}

// conn is an accepted connection, counted until closed. The websocket
// sessions close it after their hijack, like the HTTP server does for the
// rest.
type conn struct {
	net.Conn
	l      *Listener
	served bool // counted against the cap
	once   sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.open.Add(-1)
		c.l.gauge.Dec()
		if c.served {
			c.l.served.Add(-1)
		}
	})
	return err
}

// CloseWrite keeps the HTTP server's graceful close (it half-closes a
// connection before dropping it).
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// refuse answers 503 and closes. It waits up to wait for the client's
// request first and, when linger is set, as long again for the client to
// close after reading the answer; without linger it closes at once, which
// frees the descriptor for the next connection.
func (c *conn) refuse(wait time.Duration, linger bool) {
	defer c.Close()
	var buf [4096]byte
	_ = c.SetReadDeadline(time.Now().Add(wait))
	_, _ = c.Conn.Read(buf[:]) // the request's first bytes, or nothing by the deadline
	drain(c.Conn)
	// The send buffer of a new socket is empty: the write does not wait.
	_ = c.SetWriteDeadline(time.Now().Add(wait))
	if _, err := c.Write(refusal); err != nil {
		return
	}
	_ = c.CloseWrite()
	if linger {
		_ = c.SetReadDeadline(time.Now().Add(wait))
		_, _ = io.Copy(io.Discard, io.LimitReader(c.Conn, 64<<10))
	}
}

// drain reads what has arrived on c, without waiting for more.
func drain(c net.Conn) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	var buf [4096]byte
	_ = rc.Read(func(fd uintptr) bool {
		for {
			n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_DONTWAIT)
			if n <= 0 || err != nil {
				return true // true: done, do not wait for readability
			}
		}
	})
}

package integration

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// fresh is an HTTP client that opens a new connection for every request
// and gives up after 5 s: a server that does not answer fails the test
// instead of hanging it.
var fresh = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// answers GETs path and returns the status (an error when nothing came back).
func answers(url string) (int, http.Header, error) {
	resp, err := fresh.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header, nil
}

// TestConnectionLimit: past aggregator.limit.connections a new connection
// gets an immediate 503 with Retry-After, is counted, and serving resumes
// once connections close.
func TestConnectionLimit(t *testing.T) {
	s := startServer(t, nil, "-Daggregator.limit.connections=5", "-Daggregator.pool.executor=2")
	// Start from no connection but the scrape: startServer's own are gone.
	openIs := func(want string) func() string {
		return func() string {
			if got := s.metricFresh(t, `aggregator_connections_open{listener="main"}`); got != want {
				return fmt.Sprintf("aggregator_connections_open = %s, want %s", got, want)
			}
			return ""
		}
	}
	eventually(t, 10*time.Second, openIs("1"))
	// Five websockets take the five places. A place is freed only when
	// the server has seen a connection close, which for the scrapes above
	// may be a moment after the client closed: a refused dial is retried.
	var held []*websocket.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	eventually(t, 10*time.Second, func() string {
		for len(held) < 5 {
			c, _, err := websocket.DefaultDialer.Dial(s.WS+"/echo", nil)
			if err != nil {
				return fmt.Sprintf("websocket %d: %v", len(held)+1, err)
			}
			held = append(held, c)
		}
		return ""
	})
	code, hdr, err := answers(s.URL + "/health")
	if err != nil || code != 503 || hdr.Get("Retry-After") == "" {
		t.Errorf("/health over the limit: %d %v %v, want 503 with Retry-After", code, hdr, err)
	}
	if c, resp, err := websocket.DefaultDialer.Dial(s.WS+"/ws", nil); err == nil || resp == nil || resp.StatusCode != 503 {
		t.Errorf("/ws over the limit: %v %v, want HTTP 503", err, resp)
		if c != nil {
			c.Close()
		}
	}
	for _, c := range held {
		c.Close()
	}
	held = nil
	eventually(t, 10*time.Second, func() string {
		if code, _, err := answers(s.URL + "/stats"); err != nil || code != 200 {
			return fmt.Sprintf("/stats after the connections closed: %d %v", code, err)
		}
		return ""
	})
	eventually(t, 10*time.Second, openIs("1")) // the refused ones closed too
	for _, name := range []string{`aggregator_limit_hits_total{limit="connections"}`,
		`aggregator_connections_refused_total{listener="main",reason="limit"}`} {
		if got := s.metricFresh(t, name); got == "" || got == "0" {
			t.Errorf("%s = %q, want the refusals counted", name, got)
		}
	}
	if !strings.Contains(s.Stderr(), "too many connections, refusing with 503") {
		t.Error("the refusals were not logged")
	}
}

// metricFresh is metric over a new connection (an idle keep-alive one would
// count in aggregator_connections_open).
func (s *Server) metricFresh(t testing.TB, name string) string {
	t.Helper()
	resp, err := fresh.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return v
		}
	}
	return ""
}

// TestIdleKeepAliveClosed: an HTTP keep-alive connection left idle is
// closed after aggregator.timeout.idle (here 1 s).
func TestIdleKeepAliveClosed(t *testing.T) {
	s := startServer(t, nil, "-Daggregator.timeout.idle=1", "-Daggregator.pool.executor=2")
	c, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /stats HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Close {
		t.Fatalf("first request: %d, close %v: want 200 on a kept-alive connection", resp.StatusCode, resp.Close)
	}
	// The server, not this deadline, must end the connection.
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := r.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("idle keep-alive connection: %v, want the server to close it (EOF)", err)
	}
}

// TestOutOfFileDescriptors: a server whose RLIMIT_NOFILE is spent by open
// websockets (and whose connection limit is set past it) still answers
// every new connection, 503 while no descriptor is free, and recovers when
// they come back; running out is logged once per interval.
func TestOutOfFileDescriptors(t *testing.T) {
	start := time.Now()
	s := startServerUnder(t, repoRoot, []string{"prlimit", "--nofile=256:256"}, nil,
		"-Daggregator.limit.connections=100000", "-Daggregator.pool.executor=2", "-Daggregator.timeout.session=120")
	s.waitHealthy(t, 15*time.Second)
	var socks []*websocket.Conn
	defer func() {
		for _, c := range socks {
			c.Close()
		}
	}()
	refused := 0
	for i := 0; i < 300; i++ {
		c, resp, err := websocket.DefaultDialer.Dial(s.WS+"/ws", nil)
		switch {
		case err == nil:
			socks = append(socks, c)
		case resp != nil && resp.StatusCode == 503:
			refused++
		default:
			t.Fatalf("websocket %d: %v, want 101 or 503", i, err)
		}
	}
	t.Logf("%d websockets open, %d refused", len(socks), refused)
	if refused == 0 || len(socks) > 256 {
		t.Fatalf("%d websockets open, %d refused: the descriptors did not run out", len(socks), refused)
	}
	for _, path := range []string{"/health", "/stats", "/", "/ws"} {
		code, hdr, err := answers(s.URL + path)
		if err != nil {
			t.Errorf("%s with no descriptor left: %v, want an answer", path, err)
		} else if code != 503 || hdr.Get("Retry-After") == "" {
			t.Errorf("%s with no descriptor left: %d, want 503 with Retry-After", path, code)
		}
	}
	for _, c := range socks {
		c.Close()
	}
	socks = nil
	eventually(t, 15*time.Second, func() string {
		if code, _, err := answers(s.URL + "/health"); err != nil || code != 200 {
			return fmt.Sprintf("/health after the websockets closed: %d %v, want 200", code, err)
		}
		return ""
	})
	if r := s.session(t, 20*time.Second, request("normal")); r.CloseCode != 1000 || r.Count("SENDING") != 9 {
		t.Errorf("search after recovery: close %d, %d SENDING", r.CloseCode, r.Count("SENDING"))
	}
	log := s.Stderr()
	lines := strings.Count(log, "out of file descriptors")
	if most := 2 + int(time.Since(start)/(10*time.Second)); lines < 1 || lines > most {
		t.Errorf("%d lines about running out of descriptors in %v, want 1 to %d", lines, time.Since(start), most)
	}
	// INFO lines reach stderr in batches, within logFlushEvery.
	eventually(t, 3*time.Second, func() string {
		if !strings.Contains(s.Stderr(), "file descriptors available again") {
			return "recovery not logged"
		}
		return ""
	})
}

package integration

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// slowDialer opens websockets with a 4 KB receive buffer, set before the
// handshake so the TCP window stays small: a browser that does not read
// then fills the server's send queue quickly.
func slowDialer() *websocket.Dialer {
	nd := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	return &websocket.Dialer{NetDialContext: nd.DialContext}
}

// metric reads one sample line's value from /metrics ("" when absent).
func (s *Server) metric(t testing.TB, name string) string {
	t.Helper()
	resp, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

// TestSendQueueBytes: the send queue is bounded in bytes as well as in
// messages. A browser that does not read is closed once the bytes queued
// for it pass aggregator.limit.send-queue-bytes, long before the message
// count would; a browser that reads gets a 15 MB item under the defaults.
func TestSendQueueBytes(t *testing.T) {
	t.Run("non-reading browser", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, nil, "-Daggregator.worker.handlers=pool/testdata/faults.php",
			"-Daggregator.limit.send-queue=1000000", "-Daggregator.limit.send-queue-bytes=16777216",
			"-Daggregator.limit.output-size=1048576", "-Daggregator.timeout.session=30")
		c, _, err := slowDialer().Dial(s.WS+"/ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// "flood" answers 200 suppliers of 1000 items, ~60 MB of messages
		// in 200,000: under the count limit, over the bytes limit.
		_ = c.WriteMessage(websocket.TextMessage, []byte(request("flood")))
		eventually(t, 30*time.Second, func() string {
			if !strings.Contains(s.Stderr(), "aggregator.limit.send-queue-bytes=16777216") {
				return "the server did not close a browser over the bytes limit"
			}
			if st := s.stats(t); st.SessionAlive != 0 || st.TaskPending != 0 {
				return fmt.Sprintf("stats %+v", st)
			}
			return ""
		})
		if v := s.metric(t, `aggregator_limit_hits_total{limit="send_queue_bytes"}`); v != "1" {
			t.Errorf("send_queue_bytes limit hits: %q, want 1", v)
		}
	})
	t.Run("reading browser, one big item", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, []string{"BIG_ITEM_MB=15"}, "-Daggregator.worker.handlers=integration/testdata/bigitem.php",
			"-Daggregator.pool.executor=2", "-Daggregator.timeout.script=30", "-Daggregator.timeout.session=60")
		r := s.session(t, 60*time.Second, request("big"))
		if r.CloseCode != 1000 || r.Count("SENDING") != 1 || r.Count("SUCCESS") != 1 {
			t.Fatalf("close %d, %d SENDING, %d SUCCESS: want one 15 MB item and close 1000", r.CloseCode, r.Count("SENDING"), r.Count("SUCCESS"))
		}
		for _, m := range r.Msgs {
			if m.str("_status") == "SENDING" && len(m.str("name")) != 15<<20 {
				t.Errorf("the item's name has %d bytes, want 15 MB", len(m.str("name")))
			}
		}
	})
}

// rawSession sends one frame of type mt and returns every frame the server
// sent, unparsed, with the close code.
func (s *Server) rawSession(t testing.TB, path string, mt int, data []byte) (frames [][]byte, closeCode int) {
	t.Helper()
	c := s.dial(t, path)
	defer c.Close()
	if err := c.WriteMessage(mt, data); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		_, m, err := c.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if !asCloseError(err, &ce) {
				t.Fatalf("read after %d frames: %v", len(frames), err)
			}
			return frames, ce.Code
		}
		frames = append(frames, m)
	}
}

// TestInvalidUTF8: a text frame that is not UTF-8 fails the connection with
// 1007 (RFC 6455 §8.1) before anything is processed, and nothing the server
// sends is invalid UTF-8, whatever PHP writes: _info, items and a
// PublicError's _message included.
func TestInvalidUTF8(t *testing.T) {
	s := startServer(t, nil, "-Daggregator.worker.handlers=integration/testdata/utf8.php", "-Daggregator.pool.executor=2")
	bad := []byte("{\"code\":\"\xff\xfe\",\"brand\":\"ctr\",\"apikey\":\"1\",\"analog\":1}")
	frames, code := s.rawSession(t, "/ws", websocket.TextMessage, bad)
	if code != websocket.CloseInvalidFramePayloadData || len(frames) != 0 {
		t.Errorf("invalid UTF-8 request: close %d, frames %q; want 1007 and none", code, frames)
	}
	eventually(t, 5*time.Second, func() string {
		if v := s.metric(t, `aggregator_sessions_ended_total{reason="bad_utf8"}`); v != "1" {
			return fmt.Sprintf("sessions ended for bad UTF-8: %q, want 1", v)
		}
		if st := s.stats(t); st.SessionAlive != 0 || st.TaskTotal != 0 {
			return fmt.Sprintf("stats %+v: the request must not have run", st)
		}
		return ""
	})
	for code, want := range map[string]string{"public": "key \ufffd\ufffd may not search", "x": "item \ufffd("} {
		frames, closeCode := s.rawSession(t, "/ws", websocket.TextMessage, []byte(request(code)))
		if closeCode != 1000 || len(frames) == 0 {
			t.Errorf("%s: close %d after %d frames", code, closeCode, len(frames))
		}
		all := ""
		for _, f := range frames {
			if !utf8.Valid(f) {
				t.Errorf("%s: the server sent an invalid UTF-8 text frame: %q", code, f)
			}
			all += string(f)
		}
		if !strings.Contains(all, want) {
			t.Errorf("%s: frames %q lack %q", code, all, want)
		}
	}
}

// TestEchoIsBounded: /echo sockets are sessions like /ws ones: they count
// against aggregator.limit.sessions and in /stats, are refused 1007 for
// invalid UTF-8, and last at most aggregator.timeout.session.
func TestEchoIsBounded(t *testing.T) {
	s := startServer(t, nil, "-Daggregator.limit.sessions=2", "-Daggregator.timeout.session=2", "-Daggregator.pool.executor=2")
	a := s.dial(t, "/echo")
	defer a.Close()
	if err := a.WriteMessage(websocket.TextMessage, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	_ = a.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, m, err := a.ReadMessage(); err != nil || string(m) != "ping" {
		t.Fatalf("echo: %q %v", m, err)
	}
	b := s.dial(t, "/ws")
	defer b.Close()
	eventually(t, 5*time.Second, func() string {
		if st := s.stats(t); st.SessionAlive != 2 {
			return fmt.Sprintf("stats %+v, want the echo and the search alive", st)
		}
		return ""
	})
	for _, path := range []string{"/echo", "/ws"} {
		_, resp, err := websocket.DefaultDialer.Dial(s.WS+path, nil)
		if err == nil || resp == nil || resp.StatusCode != 503 {
			t.Errorf("%s with the session limit full: %v %v, want HTTP 503", path, err, resp)
		}
	}
	// The echo ends with the session time (2 s here).
	r := readAll(t, a, 10*time.Second)
	if r.CloseCode != 1000 {
		t.Errorf("echo at the session time: close %d, want 1000", r.CloseCode)
	}
	b.Close()
	eventually(t, 10*time.Second, func() string {
		if st := s.stats(t); st.SessionAlive != 0 {
			return fmt.Sprintf("stats %+v: sessions still alive", st)
		}
		return ""
	})
	if _, code := s.rawSession(t, "/echo", websocket.TextMessage, []byte("bad \xff")); code != websocket.CloseInvalidFramePayloadData {
		t.Errorf("echo of invalid UTF-8: close %d, want 1007", code)
	}
}

var instanceRE = regexp.MustCompile(`"instance": "([0-9a-f]{8})"\}$`)

// TestInstanceInEveryLine: two runs appending to one log file each put
// their own instance id at the end of every line, so session "1" of one
// run is told from session "1" of the other; the browser's _session is
// unchanged.
func TestInstanceInEveryLine(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "shared.log")
	for run := 0; run < 2; run++ {
		s := startServer(t, nil, "-Daggregator.log.file="+logFile, "-Daggregator.pool.executor=2")
		r := s.session(t, 20*time.Second, request("normal"))
		if r.CloseCode != 1000 || len(r.Msgs) == 0 || r.Msgs[0].str("_session") != "1" {
			t.Fatalf("run %d: close %d, messages %v: want session \"1\"", run, r.CloseCode, r.Msgs)
		}
		s.Stop(t)
	}
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	opened := map[string]string{} // instance -> the "session done" line of its session "1"
	started := map[string]bool{}  // instances that logged their start
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		m := instanceRE.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("a line without the instance id at its end: %s", line)
			continue
		}
		if strings.Contains(line, "aggregator listening") {
			if !strings.Contains(line, `"pid": `) || !strings.Contains(line, `"version": `) {
				t.Errorf("the start line lacks pid or version: %s", line)
			}
			started[m[1]] = true
		}
		if strings.Contains(line, "\tsession done\t") && strings.Contains(line, `"session": "1"`) {
			opened[m[1]] = line
		}
	}
	if len(started) != 2 || len(opened) != 2 {
		t.Errorf("%d instances started and %d opened a session \"1\", want 2 and 2 told apart:\n%s", len(started), len(opened), b)
	}
	for id := range opened {
		if !started[id] {
			t.Errorf("session of instance %s, which logged no start", id)
		}
	}
}

// TestLogDiskFull: with the log file on a full disk (/dev/full: every write
// fails ENOSPC) the server serves, says so on /health (200, degraded, with
// the reason) and complains on stderr once per interval, not once per line.
func TestLogDiskFull(t *testing.T) {
	start := time.Now()
	s := startServer(t, nil, "-Daggregator.log.file=/dev/full", "-Dlogging.level.me.blzr.aggregator=DEBUG",
		"-Daggregator.pool.executor=2")
	for i := 0; i < 5; i++ {
		if r := s.session(t, 20*time.Second, request("normal")); r.CloseCode != 1000 || r.Count("SENDING") != 9 {
			t.Fatalf("session with the log disk full: close %d, %d SENDING", r.CloseCode, r.Count("SENDING"))
		}
	}
	resp, err := http.Get(s.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"degraded"`) || !strings.Contains(string(body), "/dev/full") {
		t.Errorf("/health %d %s, want 200 degraded naming the log file", resp.StatusCode, body)
	}
	stderr := s.Stderr()
	lines := strings.Count(stderr, "\n")
	complaints := strings.Count(stderr, "log file cannot be written")
	// One at the first lost line, then at most one per 10 s interval.
	if most := 2 + int(time.Since(start)/(10*time.Second)); complaints < 1 || complaints > most {
		t.Errorf("%d complaints about the log file in %v (%d stderr lines), want 1 to %d", complaints, time.Since(start), lines, most)
	}
	if strings.Contains(stderr, "write error") {
		t.Errorf("zap's per-line write errors reach stderr:\n%.2000s", stderr)
	}
}

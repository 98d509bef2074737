package integration

import (
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/theaspect/aggregator/internal/procstat"
)

// TestFaults: misbehaving PHP gets its SPEC code and a clear log line, and
// the service keeps serving.
func TestFaults(t *testing.T) {
	s := startServer(t, nil, "-Daggregator.worker.handlers=pool/testdata/faults.php",
		"-Daggregator.pool.executor=3", "-Daggregator.timeout.script=2",
		"-Daggregator.limit.output-size=1000000")
	plain := expect{1, 1, 1, nil, 1000}
	cases := []struct {
		code   string
		want   expect
		logHas string
	}{
		{"noisy", plain, "php stdout"},
		{"badutf8", plain, ""},
		{"memory", expect{0, 0, 0, []string{"E_SCRIPT_ERROR"}, 1000}, "Allowed memory size"},
		{"fork", expect{0, 0, 0, []string{"E_SCRIPT_TIMEOUT"}, 1000}, "child pid"},
		{"big", expect{0, 0, 0, []string{"E_SCRIPT_ERROR"}, 1000}, "aggregator.limit.output-size"},
	}
	for _, tc := range cases {
		t.Run(tc.code, func(t *testing.T) {
			r := s.session(t, 20*time.Second, request(tc.code))
			got := expect{r.Count("PENDING"), r.Count("SENDING"), r.Count("SUCCESS"), r.Errors(), r.CloseCode}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %+v want %+v: %v", got, tc.want, r.Msgs)
			}
			if tc.logHas != "" {
				eventually(t, 3*time.Second, func() string {
					if !strings.Contains(s.Log(), tc.logHas) {
						return "log lacks " + tc.logHas
					}
					return ""
				})
			}
			// The service keeps serving.
			if r := s.session(t, 10*time.Second, request("plain")); r.Count("SUCCESS") != 1 {
				t.Errorf("after %s, a plain session got %v", tc.code, r.Msgs)
			}
		})
	}
	t.Run("badutf8 is valid text", func(t *testing.T) {
		r := s.session(t, 10*time.Second, request("badutf8"))
		info, _ := r.Msgs[0]["_info"].(map[string]any)
		if info["s"] != "bad \uFFFD here" {
			t.Errorf("_info %v, want the invalid bytes replaced by U+FFFD", info)
		}
	})
	t.Run("forked child killed", func(t *testing.T) {
		m := regexp.MustCompile(`child pid (\d+)`).FindStringSubmatch(s.Log())
		if m == nil {
			t.Fatal("no child pid in the log")
		}
		pid, _ := strconv.Atoi(m[1])
		eventually(t, 3*time.Second, func() string {
			if procstat.Alive(pid) {
				return fmt.Sprintf("the handler's child %d outlived its killed worker", pid)
			}
			return ""
		})
	})
}

// TestWorkerClosesPipe: a worker that closes its result pipe but keeps
// running fails its job at once, is killed and replaced.
func TestWorkerClosesPipe(t *testing.T) {
	s := startServer(t, nil, "-Daggregator.worker.command=php pool/testdata/closepipe_worker.php",
		"-Daggregator.pool.executor=2", "-Daggregator.timeout.script=10")
	before := workerPIDs(t, s)
	start := time.Now()
	r := s.session(t, 15*time.Second, request("normal"))
	if got := r.Errors(); len(got) != 1 || got[0] != "E_SCRIPT_ERROR" {
		t.Errorf("errors %v, want E_SCRIPT_ERROR", got)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v: the closed pipe should fail the job at once, not at its timeout", d)
	}
	eventually(t, 5*time.Second, func() string {
		for pid := range before {
			if procstat.Alive(pid) {
				if _, still := workerPIDs(t, s)[pid]; !still {
					return fmt.Sprintf("worker %d was dropped but still runs", pid)
				}
			}
		}
		if n := len(workerPIDs(t, s)); n != 2 {
			return fmt.Sprintf("%d workers, want 2", n)
		}
		return ""
	})
}

// TestKillWorkersUnderLoad: SIGKILL random workers every 100 ms while 400
// sessions run: every task ends exactly once, every session closes 1000,
// and the pool is back to full size after.
func TestKillWorkersUnderLoad(t *testing.T) {
	s := startServer(t, []string{"DEMO_DELAY_MS=10"}, "-Daggregator.pool.executor=4", "-Daggregator.timeout.script=5")
	stop := make(chan struct{})
	killed := 0
	var killer sync.WaitGroup
	killer.Add(1)
	go func() {
		defer killer.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			pids := workerPIDs(t, s)
			for pid := range pids {
				if rand.Intn(len(pids)) == 0 {
					if syscall.Kill(pid, syscall.SIGKILL) == nil {
						killed++
					}
					break
				}
			}
		}
	}()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 40)
	var mu sync.Mutex
	outcomes := map[string]int{}
	for i := 0; i < 400; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r := s.session(t, 30*time.Second, request("normal"))
			if r.CloseCode != 1000 {
				t.Errorf("close %d", r.CloseCode)
			}
			checkMessages(t, r, "normal")
			ends := r.Count("SUCCESS") + r.Count("ERROR")
			suppliersFailed := len(r.Msgs) > 0 && r.Msgs[0].str("_task") == "SUPPLIERS"
			if !suppliersFailed && (r.Count("PENDING") != 3 || ends != 3) {
				t.Errorf("%d PENDING, %d ends: every task must end exactly once\n%v", r.Count("PENDING"), ends, r.Msgs)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, e := range r.Errors() {
				if e != "E_SCRIPT_ERROR" {
					t.Errorf("error %s, want only E_SCRIPT_ERROR for killed jobs", e)
				}
				outcomes[e]++
			}
			outcomes["SUCCESS"] += r.Count("SUCCESS")
		}()
	}
	wg.Wait()
	close(stop)
	killer.Wait()
	eventually(t, 10*time.Second, func() string {
		if n := len(workerPIDs(t, s)); n != 4 {
			return fmt.Sprintf("pool has %d workers, want 4", n)
		}
		st := s.stats(t)
		if st.TaskPending != 0 || st.SessionAlive != 0 || st.SessionFinished != 400 {
			return fmt.Sprintf("stats %+v", st)
		}
		return ""
	})
	t.Logf("killed %d workers; outcomes %v", killed, outcomes)
	if killed < 5 {
		t.Errorf("only %d kills: the test did not exercise anything", killed)
	}
}

// TestLimits: each protective limit gives its clear outcome and is counted.
func TestLimits(t *testing.T) {
	s := startServer(t, nil, "-Daggregator.worker.handlers=pool/testdata/faults.php",
		"-Daggregator.limit.sessions=3", "-Daggregator.limit.request-size=1024",
		"-Daggregator.limit.send-queue=100", "-Daggregator.timeout.script=10", "-Daggregator.timeout.session=10",
		"-Daggregator.ws.allowed-origins=https://shop.example")
	t.Run("request size", func(t *testing.T) {
		big := `{"code":"normal","brand":"` + strings.Repeat("b", 4096) + `","apikey":"1","analog":1}`
		r := s.session(t, 5*time.Second, big)
		if r.CloseCode != 1009 || len(r.Msgs) != 0 {
			t.Errorf("close %d msgs %v, want 1009", r.CloseCode, r.Msgs)
		}
	})
	t.Run("origin", func(t *testing.T) {
		for origin, want := range map[string]int{"http://evil.example": 403, "https://shop.example": 101, s.URL: 101} {
			c, resp, err := websocket.DefaultDialer.Dial(s.WS+"/ws", http.Header{"Origin": {origin}})
			if resp == nil || resp.StatusCode != want {
				t.Errorf("origin %s: %v %v, want %d", origin, err, resp, want)
			}
			if c != nil {
				c.Close()
			}
		}
	})
	t.Run("sessions", func(t *testing.T) {
		var conns []*websocket.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		eventually(t, 3*time.Second, func() string {
			if st := s.stats(t); st.SessionAlive != 0 {
				return "sessions of earlier subtests still alive"
			}
			return ""
		})
		for i := 0; i < 3; i++ {
			conns = append(conns, s.dial(t, "/ws"))
		}
		_, resp, err := websocket.DefaultDialer.Dial(s.WS+"/ws", nil)
		if err == nil || resp == nil || resp.StatusCode != 503 {
			t.Errorf("4th session: %v %v, want HTTP 503", err, resp)
		}
	})
	t.Run("slow browser", func(t *testing.T) {
		eventually(t, 5*time.Second, func() string {
			if st := s.stats(t); st.SessionAlive != 0 {
				return "sessions of earlier subtests still alive"
			}
			return ""
		})
		// A browser with a tiny receive buffer that never reads. The buffer
		// is set before connecting so the TCP window is small from the
		// handshake on; "flood" sends ~50 MB, more than the server's socket
		// buffer can grow to (tcp_wmem max is 4 MB by default), so the
		// server's send queue must fill whatever the machine's settings.
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
		d := websocket.Dialer{NetDialContext: nd.DialContext}
		c, _, err := d.Dial(s.WS+"/ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.WriteMessage(websocket.TextMessage, []byte(request("flood")))
		eventually(t, 15*time.Second, func() string {
			if !strings.Contains(s.Stderr(), "send queue full") {
				return "the server did not give up on a browser that does not read"
			}
			if st := s.stats(t); st.SessionAlive != 0 || st.TaskPending != 0 {
				return fmt.Sprintf("stats %+v", st)
			}
			return ""
		})
	})
	resp, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, limit := range []string{"request_size", "sessions", "send_queue"} {
		if !strings.Contains(string(body), `aggregator_limit_hits_total{limit="`+limit+`"}`) {
			t.Errorf("/metrics does not count the %s limit", limit)
		}
	}
}

// TestDisconnectAtEveryStage: browsers leaving at any point leave no PHP
// job running and no goroutine behind.
func TestDisconnectAtEveryStage(t *testing.T) {
	s := startServer(t, []string{"DEMO_DELAY_MS=100"}, "-Daggregator.pool.executor=4", "-Daggregator.timeout.script=10")
	base := goroutines(t, s)
	stages := map[string]func(c *websocket.Conn){
		"before sending": func(c *websocket.Conn) {},
		"right after":    func(c *websocket.Conn) { _ = c.WriteMessage(1, []byte(request("mixed"))) },
		"during suppliers": func(c *websocket.Conn) {
			_ = c.WriteMessage(1, []byte(request("mixed")))
			time.Sleep(30 * time.Millisecond)
		},
		"after a PENDING": func(c *websocket.Conn) { _ = c.WriteMessage(1, []byte(request("mixed"))); readUntil(c, "PENDING") },
		"after a SENDING": func(c *websocket.Conn) { _ = c.WriteMessage(1, []byte(request("mixed"))); readUntil(c, "SENDING") },
		"bad request":     func(c *websocket.Conn) { _ = c.WriteMessage(1, []byte("{")) },
		"second request": func(c *websocket.Conn) {
			_ = c.WriteMessage(1, []byte(request("itemsTimeout")))
			_ = c.WriteMessage(1, []byte(request("x")))
		},
	}
	for round := 0; round < 3; round++ {
		var wg sync.WaitGroup
		for name, f := range stages {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := s.dial(t, "/ws")
				f(c)
				if rand.Intn(2) == 0 {
					_ = c.UnderlyingConn().Close() // gone without a close frame
				} else {
					_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, name))
					c.Close()
				}
			}()
		}
		wg.Wait()
	}
	checkNoBusyPHP(t, s, "worker")
	eventually(t, 5*time.Second, func() string {
		st := s.stats(t)
		if st.SessionAlive != 0 || st.TaskPending != 0 {
			return fmt.Sprintf("stats %+v", st)
		}
		if n := goroutines(t, s); n > base+3 {
			return fmt.Sprintf("%d goroutines, %d before: sessions leaked some", n, base)
		}
		return ""
	})
}

func readUntil(c *websocket.Conn, status string) {
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, m, err := c.ReadMessage()
		if err != nil || strings.Contains(string(m), `"`+status+`"`) {
			return
		}
	}
}

// goroutines reads go_goroutines from the server's /metrics.
func goroutines(t *testing.T, s *Server) int {
	t.Helper()
	resp, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^go_goroutines (\d+)`).FindSubmatch(body)
	if m == nil {
		t.Fatal("no go_goroutines in /metrics")
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

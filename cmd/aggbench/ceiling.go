package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// ceilingBrowsers is the concurrency of the ceiling comparison (issue 16).
const ceilingBrowsers = 16

// ceiling compares the aggregator with a server that costs only the socket:
// it replays the recorded messages of a `normal` search (no PHP, no JSON
// work). Same client, same concurrency, same run.
func ceiling() {
	fmt.Printf("### The aggregator against its replay ceiling (`normal`, %d browsers, worker mode, 4 workers, DEMO_DELAY_MS=0)\n\n", ceilingBrowsers)
	agg := start([]string{"DEMO_DELAY_MS=0"}, "-Daggregator.pool.executor=4")
	defer agg.stop()
	// The same with the max-jobs default before it became 10,000 per job
	// at once: at ~6,000 jobs/s it starts a PHP process every ~170 ms.
	agg0 := start([]string{"DEMO_DELAY_MS=0"}, "-Daggregator.pool.executor=4", "-Daggregator.pool.max-jobs=1000")
	defer agg0.stop()
	// And with 4 jobs per worker: when every worker is busy a job is
	// pipelined to one, and PHP takes several per wake-up (for translators
	// that do not block, e.g. that wait with fetch()).
	agg4 := start([]string{"DEMO_DELAY_MS=0"}, "-Daggregator.pool.executor=4", "-Daggregator.pool.concurrency=4")
	defer agg4.stop()
	// And on one core: the Go runtime then hands goroutines over on one
	// thread, without waking another to run them beside the PHP workers.
	agg1 := start([]string{"DEMO_DELAY_MS=0", "GOMAXPROCS=1"}, "-Daggregator.pool.executor=4")
	defer agg1.stop()
	// And with Go's own garbage collector pacing (a collection whenever
	// the heap doubles, from 4 MB on), as before aggregator.gc.heap-floor.
	aggGC := start([]string{"DEMO_DELAY_MS=0"}, "-Daggregator.pool.executor=4", "-Daggregator.gc.heap-floor=0")
	defer aggGC.stop()
	msgs := record(agg.ws)
	rp := startReplay(msgs)
	defer rp.stop()
	rp1 := startReplay(msgs, "GOMAXPROCS=1")
	defer rp1.stop()

	type target struct {
		name, url, addr string
		pid             int
		php             bool
	}
	targets := []target{
		{"replay, a write per message", rp.ws, rp.addr, rp.pid(), false},
		{"replay, one write per search", rp.ws + "-batched", rp.addr, rp.pid(), false},
		{"aggregator", agg.ws, agg.addr, agg.pid(), true},
		{"aggregator, max-jobs=1000", agg0.ws, agg0.addr, agg0.pid(), true},
		{"aggregator, gc.heap-floor=0", aggGC.ws, aggGC.addr, aggGC.pid(), true},
		{"aggregator, concurrency=4", agg4.ws, agg4.addr, agg4.pid(), true},
		{"replay, a write per message, GOMAXPROCS=1", rp1.ws, rp1.addr, rp1.pid(), false},
		{"aggregator, GOMAXPROCS=1", agg1.ws, agg1.addr, agg1.pid(), true},
	}
	// Each round measures every target once, in turn; a target's row is
	// its median round (by its share of the same round's replay), with
	// the range over the rounds: alternate runs on a shared machine
	// swing by a third.
	type row struct {
		rate, ratio, cpu, allocs, calls float64
		lat, php                        string
		failed                          int
	}
	rows := map[string][]row{}
	for r := 0; r < *rounds; r++ {
		var base float64
		for _, t := range targets {
			load(t.url, "normal", ceilingBrowsers, time.Second) // warm up
			c0, m0, y0 := cpuOf(t.pid), mallocs(t.addr), syscalls(t.pid)
			out, took := load(t.url, "normal", ceilingBrowsers, *duration)
			c1, m1, y1 := cpuOf(t.pid), mallocs(t.addr), syscalls(t.pid)
			s := summarize(out, false)
			for _, o := range out {
				if o.ok() && o.msgs != len(msgs) {
					fail("%s: a session got %d messages, the recording has %d", t.name, o.msgs, len(msgs))
				}
			}
			rate := float64(s.ok) / took.Seconds()
			if t.name == targets[0].name {
				base = rate
			}
			n := float64(len(out))
			phpCPU := "—"
			if t.php {
				phpCPU = fmt.Sprintf("%.0f µs", (c1.php-c0.php)/n*1e6)
			}
			rows[t.name] = append(rows[t.name], row{rate: rate, ratio: 100 * rate / base, cpu: (c1.server - c0.server) / n * 1e6,
				allocs: (m1 - m0) / n, calls: (y1 - y0) / n, lat: s.latencies(), php: phpCPU, failed: s.failed})
		}
	}
	if *rounds > 1 {
		fmt.Printf("Each row is the median of %d rounds (by its share of the same round's replay), the range over them in brackets; failed counts all rounds.\n\n", *rounds)
	}
	fmt.Println("| server | sessions/s | of replay (a write per message) | first item p50 / p99 ms | session p50 / p99 ms | server CPU per search | allocations per search | reads+writes per search | PHP CPU per search | failed |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	for _, t := range targets {
		rs := rows[t.name]
		sort.Slice(rs, func(i, j int) bool { return rs[i].ratio < rs[j].ratio })
		m := rs[len(rs)/2]
		ratio, cpu := fmt.Sprintf("%.0f%%", m.ratio), fmt.Sprintf("%.0f µs", m.cpu)
		if len(rs) > 1 {
			lo, hi := rs[0].cpu, rs[0].cpu
			for _, r := range rs {
				lo, hi = min(lo, r.cpu), max(hi, r.cpu)
			}
			ratio += fmt.Sprintf(" (%.0f–%.0f%%)", rs[0].ratio, rs[len(rs)-1].ratio)
			cpu += fmt.Sprintf(" (%.0f–%.0f)", lo, hi)
		}
		failed := 0
		for _, r := range rs {
			failed += r.failed
		}
		fmt.Printf("| %s | %s | %s | %s | %s | %.0f | %.1f | %s | %d |\n", t.name, commas(m.rate), ratio, m.lat, cpu, m.allocs, m.calls, m.php, failed)
	}
	fmt.Printf("\nA `normal` search is %d messages (3 PENDING, 9 SENDING, 3 SUCCESS) and a close. "+
		"CPU from /proc/PID/stat (utime+stime) over the run ÷ sessions; allocations from go_memstats_mallocs_total ÷ sessions; "+
		"reads+writes from /proc/PID/io (syscr+syscw: sockets, pipes to PHP, the log; a read that finds nothing counts too); "+
		"the client runs on the same %d cores.\n\n", len(msgs), runtime.NumCPU())
}

// record runs one `normal` session and returns its messages in order.
func record(url string) [][]byte {
	c, _, err := dialer.Dial(url, nil)
	if err != nil {
		fail("record: %v", err)
	}
	defer c.Close()
	_ = c.WriteMessage(websocket.TextMessage, []byte(`{"code":"normal","brand":"ctr","apikey":"1","analog":1}`))
	var msgs [][]byte
	for {
		_, m, err := c.ReadMessage()
		if err != nil {
			if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != 1000 {
				fail("record: %v", err)
			}
			return msgs
		}
		msgs = append(msgs, m)
	}
}

// startReplay runs this program as a replay server of msgs, with env
// added to its environment.
func startReplay(msgs [][]byte, env ...string) *server {
	f, err := os.CreateTemp("", "aggbench-replay-*.json")
	if err != nil {
		fail("%v", err)
	}
	strs := make([]string, len(msgs))
	for i, m := range msgs {
		strs[i] = string(m)
	}
	_ = json.NewEncoder(f).Encode(strs)
	f.Close()
	self, err := os.Executable()
	if err != nil {
		fail("%v", err)
	}
	cmd := exec.Command(self, "-serve-replay", f.Name())
	cmd.Env = append(os.Environ(), env...)
	s, err := startPrinting(cmd)
	if err != nil {
		fail("the replay server did not start: %v", err)
	}
	return s
}

// startPrinting starts a server that prints the address it listens on as
// its first line (the replay server, bench/goshop, bench/nodeshop).
func startPrinting(cmd *exec.Cmd) (*server, error) {
	cmd.Stderr = os.Stderr
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.done) }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("%s printed no address: %v", cmd.Path, err)
	}
	s.addr = strings.TrimSpace(line)
	s.ws = "ws://" + s.addr + "/ws"
	return s, nil
}

// replayServer serves /ws (each recorded message written as it would be by
// a naive server: one WriteMessage, one write(2) each), /ws-batched (all of
// a search's messages and its close frame in one write(2)) and /metrics
// (go_memstats_mallocs_total, as the aggregator's). It prints its address.
func replayServer(file string) {
	b, err := os.ReadFile(file)
	if err != nil {
		fail("%v", err)
	}
	var strs []string
	if err := json.Unmarshal(b, &strs); err != nil {
		fail("%v", err)
	}
	msgs := make([][]byte, len(strs))
	for i, s := range strs {
		msgs[i] = []byte(s)
	}
	// The aggregator's upgrader settings.
	up := websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 4096, WriteBufferPool: &sync.Pool{}}
	closeMsg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	serve := func(w http.ResponseWriter, r *http.Request, batched bool) {
		var bc *bufConn
		if batched {
			w = &hijacker{ResponseWriter: w, wrap: func(c net.Conn) net.Conn { bc = &bufConn{Conn: c}; return bc }}
		}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetReadLimit(65536)
		_ = c.SetReadDeadline(time.Now().Add(time.Minute))
		if _, _, err := c.ReadMessage(); err != nil { // the request
			return
		}
		if bc != nil {
			bc.hold = true
		}
		for _, m := range msgs {
			_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := c.WriteMessage(websocket.TextMessage, m); err != nil {
				return
			}
		}
		_ = c.WriteControl(websocket.CloseMessage, closeMsg, time.Now().Add(10*time.Second))
		if bc != nil {
			if bc.flush() != nil {
				return
			}
		}
		// Wait for the browser's close frame, as the aggregator does.
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) { serve(w, r, false) })
	mux.HandleFunc("/ws-batched", func(w http.ResponseWriter, r *http.Request) { serve(w, r, true) })
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		fmt.Fprintf(w, "go_memstats_mallocs_total %d\n", m.Mallocs)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail("%v", err)
	}
	fmt.Println(ln.Addr().String())
	_ = http.Serve(ln, mux)
}

// hijacker hands gorilla a wrapped connection.
type hijacker struct {
	http.ResponseWriter
	wrap func(net.Conn) net.Conn
}

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := h.ResponseWriter.(http.Hijacker).Hijack()
	if err != nil {
		return nil, nil, err
	}
	return h.wrap(c), rw, nil
}

// bufConn holds what is written while hold is set, until flush. The
// replay's connection has one writer, so it needs no lock.
type bufConn struct {
	net.Conn
	hold bool
	buf  []byte
}

func (b *bufConn) Write(p []byte) (int, error) {
	if !b.hold {
		return b.Conn.Write(p)
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *bufConn) flush() error {
	b.hold = false
	_, err := b.Conn.Write(b.buf)
	b.buf = b.buf[:0]
	return err
}

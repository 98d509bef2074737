// Command aggbench measures the aggregator as browsers use it: it starts
// bin/aggregator in each configuration, runs websocket sessions against it
// and prints a Markdown table (sessions/s, first-item and whole-session
// latency, RSS). `make bench` runs it; results go to docs/performance.md.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

var (
	binary   = flag.String("bin", "bin/aggregator", "the aggregator binary")
	duration = flag.Duration("d", 5*time.Second, "how long each throughput run lasts")
	only     = flag.String("only", "", "run only the parts whose name contains this (throughput, fair, memory)")
)

func main() {
	flag.Parse()
	fmt.Printf("Machine: %d CPUs, %s, %s\n\n", runtime.NumCPU(), cpuModel(), phpVersion())
	if want("throughput") {
		throughput()
	}
	if want("fair") {
		fairness()
	}
	if want("memory") {
		memory()
	}
}

func want(part string) bool { return *only == "" || strings.Contains(part, *only) }

// server is a running aggregator.
type server struct {
	cmd  *exec.Cmd
	ws   string
	done chan struct{}
}

var listenRE = regexp.MustCompile(`aggregator listening\s+\{"addr": "([0-9.:]+)"`)

func start(env []string, args ...string) *server {
	logs, _ := os.MkdirTemp("", "aggbench-")
	all := append([]string{"-Dserver.port=0", "-Daggregator.log.file=" + filepath.Join(logs, "a.log")}, args...)
	cmd := exec.Command(*binary, all...)
	cmd.Env = append(os.Environ(), env...)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		fail("start %s: %v", *binary, err)
	}
	s := &server{cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	go func() { _ = cmd.Wait(); close(s.done) }()
	select {
	case a := <-addr:
		s.ws = "ws://" + a + "/ws"
	case <-time.After(20 * time.Second):
		fail("server did not start")
	}
	// Let the workers warm up before measuring.
	time.Sleep(1500 * time.Millisecond)
	return s
}

func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
	}
}

func (s *server) rss() int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// outcome is one session as the browser saw it.
type outcome struct {
	first, total time.Duration // first SENDING, close
	msgs         int
	closeCode    int
	err          error
}

func session(url, code string) outcome {
	start := time.Now()
	c, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		return outcome{err: err}
	}
	defer c.Close()
	req := fmt.Sprintf(`{"code":%q,"brand":"ctr","apikey":"1","analog":1}`, code)
	if err := c.WriteMessage(websocket.TextMessage, []byte(req)); err != nil {
		return outcome{err: err}
	}
	var o outcome
	_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
	for {
		_, m, err := c.ReadMessage()
		if err != nil {
			o.total = time.Since(start)
			if ce, ok := err.(*websocket.CloseError); ok {
				o.closeCode = ce.Code
			} else {
				o.err = err
			}
			return o
		}
		o.msgs++
		if o.first == 0 && strings.Contains(string(m), `"SENDING"`) {
			o.first = time.Since(start)
		}
	}
}

// load runs sessions of code from conc browsers for d; it returns every outcome.
func load(url, code string, conc int, d time.Duration) ([]outcome, time.Duration) {
	var mu sync.Mutex
	var out []outcome
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				o := session(url, code)
				mu.Lock()
				out = append(out, o)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out, time.Since(start)
}

func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	i := int(float64(len(ds)-1) * p)
	return ds[i]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000) }

func summarize(out []outcome) (ok int, firsts, totals []time.Duration) {
	for _, o := range out {
		if o.err != nil || o.closeCode != 1000 {
			continue
		}
		ok++
		if o.first > 0 {
			firsts = append(firsts, o.first)
		}
		totals = append(totals, o.total)
	}
	return
}

// throughput: finished sessions/s and latencies, worker vs exec.
func throughput() {
	fmt.Println("### Throughput (DEMO_DELAY_MS=0, aggregator.pool.executor=4)")
	fmt.Println()
	fmt.Println("| mode | scenario | browsers | sessions/s | first item p50 / p99 ms | session p50 / p99 ms | failed |")
	fmt.Println("|---|---|---|---|---|---|---|")
	rates := map[string]float64{}
	for _, mode := range []string{"worker", "exec"} {
		s := start([]string{"DEMO_DELAY_MS=0"}, "-Daggregator.pool.mode="+mode, "-Daggregator.pool.executor=4",
			"-Daggregator.timeout.script=1")
		for _, sc := range []struct {
			code string
			conc int
		}{{"normal", 1}, {"normal", 16}, {"normal", 64}, {"mixed", 16}} {
			if mode == "exec" && sc.conc == 64 {
				continue // exec mode is 4 processes at ~16 ms each: 64 browsers only queue
			}
			out, took := load(s.ws, sc.code, sc.conc, *duration)
			ok, firsts, totals := summarize(out)
			if sc.code == "mixed" { // mixed ends 1000 with two task errors; all sessions count
				ok = len(out)
			}
			rate := float64(ok) / took.Seconds()
			if sc.code == "normal" && sc.conc == 16 {
				rates[mode] = rate
			}
			fmt.Printf("| %s | %s | %d | %.0f | %s / %s | %s / %s | %d |\n", mode, sc.code, sc.conc, rate,
				ms(pct(firsts, .5)), ms(pct(firsts, .99)), ms(pct(totals, .5)), ms(pct(totals, .99)), len(out)-ok)
		}
		s.stop()
	}
	if rates["exec"] > 0 {
		fmt.Printf("\nworker / exec, `normal` sessions/s at 16 browsers: **%.0f×**\n\n", rates["worker"]/rates["exec"])
	}
}

// fairness: a session flooding 2001 sleeping suppliers must not starve 40
// ordinary sessions arriving meanwhile.
func fairness() {
	fmt.Println("### Fair queue (executor=4, session-limit=2, one session with 2001 sleeping suppliers)")
	fmt.Println()
	s := start([]string{"DEMO_DELAY_MS=50"}, "-Daggregator.pool.executor=4", "-Daggregator.pool.session-limit=2",
		"-Daggregator.timeout.script=5", "-Daggregator.timeout.session=60")
	defer s.stop()
	go session(s.ws, "sessionTimeout") // the flood
	time.Sleep(500 * time.Millisecond)
	var mu sync.Mutex
	var out []outcome
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := session(s.ws, "normal")
			mu.Lock()
			out = append(out, o)
			mu.Unlock()
		}()
		time.Sleep(25 * time.Millisecond)
	}
	wg.Wait()
	ok, _, totals := summarize(out)
	correct := 0
	for _, o := range out {
		if o.closeCode == 1000 && o.msgs == 15 {
			correct++
		}
	}
	fmt.Printf("| normal sessions | finished correctly | p50 ms | p99 ms | target p99 |\n|---|---|---|---|---|\n")
	fmt.Printf("| 40 | %d (%d closed 1000) | %s | %s | < 2000 |\n\n", correct, ok, ms(pct(totals, .5)), ms(pct(totals, .99)))
}

// memory: RSS of the server with 1000 sessions open, each with 3 tasks queued.
func memory() {
	fmt.Println("### Memory (1000 concurrent sessions, each with 3 queued sleeping tasks)")
	fmt.Println()
	fmt.Println("| mode | sessions | RSS idle | RSS at 1000 sessions | target |")
	fmt.Println("|---|---|---|---|---|")
	for _, mode := range []string{"worker", "exec"} {
		s := start([]string{"DEMO_DELAY_MS=0"}, "-Daggregator.pool.mode="+mode, "-Daggregator.pool.executor=4",
			"-Daggregator.timeout.script=60", "-Daggregator.timeout.session=60")
		idle := s.rss()
		var conns []*websocket.Conn
		for i := 0; i < 1000; i++ {
			c, _, err := websocket.DefaultDialer.Dial(s.ws, nil)
			if err != nil {
				fail("dial %d: %v", i, err)
			}
			_ = c.WriteMessage(websocket.TextMessage, []byte(`{"code":"itemsTimeout","brand":"b","apikey":"1","analog":1}`))
			conns = append(conns, c)
		}
		// Wait until the suppliers tasks have run and the items tasks wait.
		time.Sleep(3 * time.Second)
		if mode == "exec" {
			time.Sleep(5 * time.Second)
		}
		peak := s.rss()
		for _, c := range conns {
			c.Close()
		}
		fmt.Printf("| %s | 1000 | %.1f MB | %.1f MB | < 64 MB |\n", mode, float64(idle)/(1<<20), float64(peak)/(1<<20))
		s.stop()
	}
	fmt.Println()
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "model name") {
			return strings.TrimSpace(strings.SplitN(line, ":", 2)[1])
		}
	}
	return "unknown CPU"
}

func phpVersion() string {
	out, err := exec.Command("php", "-r", "echo 'PHP ', PHP_VERSION;").Output()
	if err != nil {
		return "no PHP"
	}
	return string(out)
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "aggbench: "+format+"\n", args...)
	os.Exit(1)
}

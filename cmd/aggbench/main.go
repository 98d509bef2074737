// Command aggbench measures the aggregator as browsers use it: it starts
// bin/aggregator in each configuration, runs websocket sessions against it
// and prints Markdown tables. `make bench` runs it; results go to the README.
//
// Parts (select with -only, comma-separated):
//
//	shop       a real shop's search: 25 suppliers of real latency, 100 browsers;
//	           the aggregator as shipped and tuned, against the same service
//	           in Go alone and in Node.js (shop.go)
//	ceiling    the aggregator against a server that only replays its messages
//	throughput sessions/s per mode and scenario
//	php        the pool against a minimal PHP loop and RoadRunner's pool (Go benchmarks)
//	latency    suppliers answering in 0..1000 ms: sync workers against fetch()
//	inflight   10,000 supplier calls in flight at once
//	fair       the fair queue under a flood
//	memory     RSS with 1000 sessions open
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/theaspect/aggregator/internal/procstat"
)

var (
	binary   = flag.String("bin", "bin/aggregator", "the aggregator binary")
	duration = flag.Duration("d", 5*time.Second, "how long each throughput run lasts")
	only     = flag.String("only", "", "comma-separated parts to run: shop, ceiling, throughput, php, latency, inflight, fair, memory (default all)")
	rounds   = flag.Int("rounds", 3, "ceiling: how many times the replay and the aggregator are measured, alternately (each row is the median)")
	latencyD = flag.Duration("latency-d", 10*time.Second, "how long each real-latency run lasts")

	target   = flag.String("target", "", "load a running server (ws://HOST:PORT/ws) with `normal` searches from -browsers for -d, print one row and exit (e.g. to profile it)")
	browsers = flag.Int("browsers", 16, "with -target: concurrent browsers")

	// Internal: aggbench runs its replay server as a process of its own.
	serveReplay = flag.String("serve-replay", "", "internal: serve the recorded messages in this file as a replay server")
)

var parts = []struct {
	name string
	run  func()
}{
	{"shop", shop},
	{"ceiling", ceiling},
	{"throughput", throughput},
	{"php", phpSide},
	{"latency", realLatency},
	{"inflight", inFlight},
	{"fair", fairness},
	{"memory", memory},
}

func main() {
	flag.Parse()
	if *serveReplay != "" {
		replayServer(*serveReplay)
		return
	}
	if *target != "" {
		out, took := load(*target, "normal", *browsers, *duration)
		s := summarize(out, false)
		fmt.Printf("| %s | %d browsers | %s sessions/s | %s | failed %d |\n", *target, *browsers,
			commas(float64(s.ok)/took.Seconds()), s.latencies(), s.failed)
		return
	}
	var names []string
	for _, p := range parts {
		names = append(names, p.name)
	}
	for _, w := range strings.Split(*only, ",") {
		if w = strings.TrimSpace(w); w != "" && !want(w) {
			fail("unknown part %q: want one of %s", w, strings.Join(names, ", "))
		}
	}
	fmt.Printf("Machine: %d CPUs, %s, %s, %s\n\n", runtime.NumCPU(), cpuModel(), phpVersion(), runtime.Version())
	for _, p := range parts {
		if selected(p.name) {
			start := time.Now()
			s0, t0 := stealTime()
			p.run()
			fmt.Fprintf(os.Stderr, "aggbench: %s took %.0f s\n", p.name, time.Since(start).Seconds())
			if s1, t1 := stealTime(); t1 > t0 {
				// On a virtual machine the neighbours' load slows every
				// figure of a part; this says how much of it there was.
				fmt.Printf("_%s: the hypervisor took %.0f%% of this machine's CPU time meanwhile (steal, /proc/stat)._\n\n", p.name, 100*(s1-s0)/(t1-t0))
			}
		}
	}
}

// stealTime is the CPU time the hypervisor gave to others (steal) and all
// CPU time, in clock ticks since boot; 0, 0 when /proc/stat cannot say.
func stealTime() (steal, total float64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0
	}
	for i, v := range f[1:] {
		n, _ := strconv.ParseFloat(v, 64)
		if i < 8 { // guest time is counted in user time already
			total += n
		}
		if i == 7 {
			steal = n
		}
	}
	return steal, total
}

// busyTime is the CPU time every process on the machine has used since
// boot (user, nice, system, irq, softirq in /proc/stat), in seconds.
func busyTime() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	var ticks float64
	for _, i := range []int{1, 2, 3, 6, 7} {
		n, _ := strconv.ParseFloat(f[i], 64)
		ticks += n
	}
	return ticks / 100 // USER_HZ
}

// want says whether name is a part.
func want(name string) bool {
	for _, p := range parts {
		if p.name == name {
			return true
		}
	}
	return false
}

// selected says whether -only asks for the part.
func selected(part string) bool { return inList(*only, part) }

// inList says whether a comma-separated list names w; an empty list
// names everything.
func inList(list, w string) bool {
	if list == "" {
		return true
	}
	for _, x := range strings.Split(list, ",") {
		if strings.TrimSpace(x) == w {
			return true
		}
	}
	return false
}

// server is a running aggregator (or replay server).
type server struct {
	cmd  *exec.Cmd
	addr string // host:port
	ws   string
	done chan struct{}
}

var listenRE = regexp.MustCompile(`aggregator listening\s+\{"addr": "([0-9.:]+)"`)

// start runs the aggregator with env and -D arguments and waits until it
// listens and its workers are ready.
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
		// Only the first lines are read line by line; the rest is drained
		// cheaply, so the bench spends no CPU reading the server's log.
		r := bufio.NewReader(stderr)
		for {
			line, err := r.ReadString('\n')
			if m := listenRE.FindStringSubmatch(line); m != nil {
				addr <- m[1]
				break
			}
			if err != nil {
				return
			}
		}
		_, _ = io.Copy(io.Discard, r)
	}()
	go func() { _ = cmd.Wait(); close(s.done) }()
	select {
	case a := <-addr:
		s.addr = a
		s.ws = "ws://" + a + "/ws"
	case <-s.done:
		fail("the server exited before it listened (its log: %s)", logs)
	case <-time.After(20 * time.Second):
		fail("server did not start")
	}
	s.waitWorkers()
	time.Sleep(500 * time.Millisecond) // let the workers warm up
	return s
}

// waitWorkers waits until every worker /workers lists is idle (exec mode
// lists none), at most a minute: hundreds of PHP processes start slowly.
func (s *server) waitWorkers() {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + s.addr + "/workers")
		if err == nil {
			var w struct {
				Mode    string `json:"mode"`
				Workers []struct {
					State string `json:"state"`
				} `json:"workers"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&w)
			resp.Body.Close()
			ready := w.Mode == "exec" || len(w.Workers) > 0
			for _, x := range w.Workers {
				ready = ready && x.State == "idle"
			}
			if ready {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	fail("the workers did not start within a minute")
}

func (s *server) pid() int { return s.cmd.Process.Pid }

func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// rss is the process's resident memory now, in bytes.
func rss(pid int) int64 { return statusKB(pid, "VmRSS:") << 10 }

func statusKB(pid int, key string) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, key) {
			f := strings.Fields(line)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb
		}
	}
	return 0
}

// cpuSnapshot is the CPU a server and its PHP children have used.
type cpuSnapshot struct {
	server float64
	php    float64 // live children plus those reaped
}

func cpuOf(pid int) cpuSnapshot {
	st, _ := procstat.Read(pid)
	s := cpuSnapshot{server: st.CPU.Seconds(), php: st.Reaped.Seconds()}
	for _, c := range procstat.Children(pid) {
		ct, _ := procstat.Read(c)
		s.php += (ct.CPU + ct.Reaped).Seconds()
	}
	return s
}

// syscalls is how many read- and write-family system calls the process
// has made (/proc/PID/io syscr + syscw).
func syscalls(pid int) float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	var n float64
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "syscr: "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			n += f
		}
		if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			n += f
		}
	}
	return n
}

// phpPSS is the summed PSS of pid's descendants (the PHP workers, exec
// processes and the children of a PHP fork server), in bytes, and how
// many processes it summed.
func phpPSS(pid int) (sum int64, procs int) {
	for _, c := range descendants(pid) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", c))
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "Pss:") {
				kb, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
				sum += kb << 10
				procs++
			}
		}
	}
	return sum, procs
}

// descendants lists pid's children, their children and so on.
func descendants(pid int) []int {
	kids := map[int][]int{}
	for _, p := range procstat.Find(func(procstat.Stat) bool { return true }) {
		if st, ok := procstat.Read(p); ok {
			kids[st.PPID] = append(kids[st.PPID], p)
		}
	}
	var out []int
	for next := kids[pid]; len(next) > 0; {
		p := next[0]
		next = append(next[1:], kids[p]...)
		out = append(out, p)
	}
	return out
}

// mallocs reads go_memstats_mallocs_total from a server's /metrics.
func mallocs(addr string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_mallocs_total "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

func mb(b int64) string { return fmt.Sprintf("%.0f MB", float64(b)/(1<<20)) }

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

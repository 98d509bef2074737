// Package integration builds the real binary, starts it with real PHP and
// talks to it as a browser does.
package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

var (
	repoRoot string // the repository, the servers' working directory
	binary   string // the aggregator built for this test run
)

func TestMain(m *testing.M) {
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Dir(filepath.Dir(file))
	if _, err := exec.LookPath("php"); err != nil {
		fmt.Fprintln(os.Stderr, "integration: php is not installed (make test installs php-cli)")
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "aggregator-it-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "aggregator")
	build := exec.Command("go", "build", "-o", binary, "./cmd/aggregator")
	build.Dir = repoRoot
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "integration: build failed:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Server is a running aggregator binary.
type Server struct {
	URL     string // http://127.0.0.1:PORT
	WS      string // ws://127.0.0.1:PORT
	Cmd     *exec.Cmd
	LogFile string
	Dir     string // its temp dir (logs)

	mu     sync.Mutex
	stderr strings.Builder
	exited chan struct{}
}

var listenRE = regexp.MustCompile(`aggregator listening\s+\{"addr": "([0-9.:]+)"`)

// startServer starts bin/aggregator on a free port with the given env (added
// to the test's) and -Dkey=value args, waits until /health answers 200, and
// stops it (SIGTERM) at cleanup.
func startServer(t testing.TB, env []string, args ...string) *Server {
	t.Helper()
	s := startServerNoWait(t, env, args...)
	s.waitHealthy(t, 15*time.Second)
	return s
}

func startServerNoWait(t testing.TB, env []string, args ...string) *Server {
	t.Helper()
	return startServerIn(t, repoRoot, env, args...)
}

// startServerIn starts the binary with workDir as its working directory and
// returns once it listens (not waiting for /health).
func startServerIn(t testing.TB, workDir string, env []string, args ...string) *Server {
	t.Helper()
	return startServerUnder(t, workDir, nil, env, args...)
}

// startServerUnder is startServerIn with the binary run by a wrapper
// command that execs it (e.g. prlimit), so the pid stays the server's.
func startServerUnder(t testing.TB, workDir string, wrapper, env []string, args ...string) *Server {
	t.Helper()
	dir := t.TempDir()
	s := &Server{Dir: dir, LogFile: filepath.Join(dir, "logs", "aggregator.log"), exited: make(chan struct{})}
	all := append([]string{"-Dserver.port=0", "-Daggregator.log.file=" + s.LogFile}, args...)
	all = append(append(wrapper[:len(wrapper):len(wrapper)], binary), all...)
	cmd := exec.Command(all[0], all[1:]...)
	cmd.Dir = workDir
	cmd.Env = append(append(os.Environ(), "DEMO_DELAY_MS=20"), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.Cmd = cmd
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			if s.stderr.Len() < 4<<20 {
				s.stderr.WriteString(line + "\n")
			}
			s.mu.Unlock()
			if m := listenRE.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	go func() {
		_ = cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() { s.Stop(t) })
	select {
	case a := <-addr:
		s.URL, s.WS = "http://"+a, "ws://"+a
	case <-s.exited:
		t.Fatalf("server exited at start:\n%s", s.Stderr())
	case <-time.After(15 * time.Second):
		t.Fatalf("server did not start:\n%s", s.Stderr())
	}
	return s
}

// Stderr is what the server wrote to stderr so far.
func (s *Server) Stderr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

// Log is the server's log file so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.LogFile)
	return string(b)
}

func (s *Server) waitHealthy(t testing.TB, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		resp, err := http.Get(s.URL + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("server not healthy after %v:\n%s", d, s.Stderr())
}

// Stop sends SIGTERM and waits for the exit (SIGKILL after 10 s).
func (s *Server) Stop(t testing.TB) {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		t.Errorf("server did not stop within 10 s of SIGTERM")
		_ = s.Cmd.Process.Kill()
		<-s.exited
	}
}

// getJSON fetches a JSON endpoint into v.
func (s *Server) getJSON(t testing.TB, path string, v any) {
	t.Helper()
	resp, err := http.Get(s.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// Msg is one message from the server.
type Msg map[string]any

func (m Msg) str(k string) string { s, _ := m[k].(string); return s }

func (m Msg) id() int64 {
	f, ok := m["_id"].(float64)
	if !ok {
		return 0
	}
	return int64(f)
}

// Result is everything a session got.
type Result struct {
	Msgs      []Msg
	CloseCode int
	CloseText string
}

// Count returns how many messages have a status.
func (r Result) Count(status string) int {
	n := 0
	for _, m := range r.Msgs {
		if m.str("_status") == status {
			n++
		}
	}
	return n
}

// Errors returns the sorted _error codes.
func (r Result) Errors() []string {
	var out []string
	for _, m := range r.Msgs {
		if e := m.str("_error"); e != "" {
			out = append(out, e)
		}
	}
	sort.Strings(out)
	return out
}

// dial opens a websocket to path.
func (s *Server) dial(t testing.TB, path string) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(s.WS+path, nil)
	if err != nil {
		if resp != nil {
			t.Fatalf("dial %s: %v (HTTP %d)", path, err, resp.StatusCode)
		}
		t.Fatalf("dial %s: %v", path, err)
	}
	return c
}

// session sends the messages and reads until the server closes the socket.
func (s *Server) session(t testing.TB, timeout time.Duration, messages ...string) Result {
	t.Helper()
	c := s.dial(t, "/ws")
	defer c.Close()
	for _, m := range messages {
		if err := c.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	return readAll(t, c, timeout)
}

// readAll reads messages until the close frame.
func readAll(t testing.TB, c *websocket.Conn, timeout time.Duration) Result {
	t.Helper()
	var r Result
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	for {
		_, data, err := c.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if ok := asCloseError(err, &ce); ok {
				r.CloseCode, r.CloseText = ce.Code, ce.Text
				return r
			}
			t.Fatalf("read after %d messages: %v", len(r.Msgs), err)
		}
		var m Msg
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("message is not JSON: %q", data)
		}
		r.Msgs = append(r.Msgs, m)
	}
}

func asCloseError(err error, ce **websocket.CloseError) bool {
	e, ok := err.(*websocket.CloseError)
	if ok {
		*ce = e
	}
	return ok
}

// request is a search request for a demo scenario.
func request(code string) string {
	return fmt.Sprintf(`{"code":%q,"brand":"ctr","apikey":"111111","analog":1}`, code)
}

// phpChildren lists the pids of PHP processes in the process groups the
// server started (its children and what they forked), with their command lines.
func phpChildren(t testing.TB, serverPID int) map[int]string {
	t.Helper()
	out := map[int]string{}
	entries, _ := os.ReadDir("/proc")
	groups := map[int]bool{}
	type proc struct {
		pid, ppid, pgid int
		cmd             string
	}
	var procs []proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the command name (which is in parentheses).
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+2:])
		f := strings.Fields(rest)
		if len(f) < 3 || f[0] == "Z" {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		pgid, _ := strconv.Atoi(f[2])
		cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		procs = append(procs, proc{pid, ppid, pgid, strings.ReplaceAll(string(cmd), "\x00", " ")})
	}
	for _, p := range procs {
		if p.ppid == serverPID {
			groups[p.pgid] = true
		}
	}
	for _, p := range procs {
		if groups[p.pgid] && p.pid != serverPID {
			out[p.pid] = p.cmd
		}
	}
	return out
}

// repeatUntilStopped runs f again and again in n goroutines until the
// returned stop is called; stop waits for the calls under way to end.
func repeatUntilStopped(n int, f func()) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				f()
			}
		}()
	}
	return func() {
		close(done)
		wg.Wait()
	}
}

// eventually retries f until it returns "" or d passes, then fails with its last word.
func eventually(t testing.TB, d time.Duration, f func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		msg := f()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stats is the /stats answer. It is spelled out here, not imported from
// server, so that a renamed JSON field (the SPEC's contract) fails the tests.
type Stats struct {
	Uptime          string `json:"uptime"`
	SessionTotal    int64  `json:"sessionTotal"`
	SessionAlive    int64  `json:"sessionAlive"`
	SessionFinished int64  `json:"sessionFinished"`
	TaskTotal       int64  `json:"taskTotal"`
	TaskPending     int64  `json:"taskPending"`
	TaskSucceeded   int64  `json:"taskSucceeded"`
	TaskFailed      int64  `json:"taskFailed"`
}

func (s *Server) stats(t testing.TB) Stats {
	t.Helper()
	var st Stats
	s.getJSON(t, "/stats", &st)
	return st
}

// workerInfo is one row of /workers: a PHP process and the jobs it runs.
type workerInfo struct {
	PID     int    `json:"pid"`
	State   string `json:"state"`
	Running []struct {
		Session string `json:"session"`
		Task    int64  `json:"task"`
		Class   string `json:"class"`
		Calls   []struct {
			Host string `json:"host"`
		} `json:"calls"`
	} `json:"running"`
}

// runningFor counts the jobs of session that PHP runs now.
func (s *Server) runningFor(t testing.TB, session string) int {
	n := 0
	for _, w := range s.workers(t) {
		for _, j := range w.Running {
			if j.Session == session {
				n++
			}
		}
	}
	return n
}

// workers lists the server's PHP processes from /workers.
func (s *Server) workers(t testing.TB) []workerInfo {
	t.Helper()
	var w struct {
		Workers []workerInfo `json:"workers"`
	}
	s.getJSON(t, "/workers", &w)
	return w.Workers
}

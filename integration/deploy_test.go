package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// The deploy without a gap (SPEC §11), with the real binary, real PHP and
// real nginx: testdata/deploy_handlers.php answers "wait-MS" searches of 3
// suppliers × 3 items, each item naming the release and the server process
// that served it.

// deployArgs run a server with the deploy handlers.
var deployArgs = []string{"-Daggregator.pool.executor=4", "-Daggregator.worker.handlers=integration/testdata/deploy_handlers.php"}

// search is one search a client ran, and what was wrong with it.
type search struct {
	code       string
	start, end time.Time
	refused    string // why the connection was refused; "" when it was upgraded
	problem    string // what was wrong with its messages; "" when whole
	release    string // where its items came from
	server     int
}

// runSearch runs one search of code at s and checks that it is whole:
// three tasks, each PENDING, three SENDING and SUCCESS in that order,
// then close 1000, every item from one release and one server.
func runSearch(s *Server, code string, timeout time.Duration) (r search) {
	r = search{code: code, start: time.Now()}
	defer func() { r.end = time.Now() }()
	c, resp, err := websocket.DefaultDialer.Dial(s.WS+"/ws", nil)
	if err != nil {
		r.refused = err.Error()
		if resp != nil {
			r.refused = fmt.Sprintf("HTTP %d", resp.StatusCode)
		}
		return r
	}
	defer c.Close()
	if err := c.WriteMessage(websocket.TextMessage, []byte(request(code))); err != nil {
		r.problem = "write: " + err.Error()
		return r
	}
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	var msgs []Msg
	for {
		_, data, err := c.ReadMessage()
		if err != nil {
			if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
				r.problem = fmt.Sprintf("after %d messages: %v", len(msgs), err)
				return r
			}
			break
		}
		var m Msg
		if err := json.Unmarshal(data, &m); err != nil {
			r.problem = fmt.Sprintf("not JSON: %q", data)
			return r
		}
		msgs = append(msgs, m)
	}
	r.problem = r.whole(msgs)
	return r
}

// whole says what is wrong with a search's messages ("" when nothing) and
// notes where its items came from.
func (r *search) whole(msgs []Msg) string {
	seq := map[int64][]string{}
	for _, m := range msgs {
		seq[m.id()] = append(seq[m.id()], strings.TrimSpace(m.str("_status")+" "+m.str("_error")))
		if m.str("_status") != "SENDING" {
			continue
		}
		server := int(m["server"].(float64))
		if r.server != 0 && (server != r.server || m.str("release") != r.release) {
			return fmt.Sprintf("items from two servers or releases: %d %q and %d %q", r.server, r.release, server, m.str("release"))
		}
		r.server, r.release = server, m.str("release")
	}
	if len(seq) != 3 {
		return fmt.Sprintf("%d tasks, want 3: %v", len(seq), seq)
	}
	for id, s := range seq {
		if strings.Join(s, " ") != "PENDING SENDING SENDING SENDING SUCCESS" {
			return fmt.Sprintf("task %d got %v", id, s)
		}
	}
	return ""
}

// load runs searches back to back until stopped.
type load struct {
	mu       sync.Mutex
	searches []search
	stop     chan struct{}
	wg       sync.WaitGroup
}

// startLoad runs, through front, n clients per code, each search after the
// previous one (and a pause).
func startLoad(front *Server, clients map[string]int, pause time.Duration) *load {
	l := &load{stop: make(chan struct{})}
	for code, n := range clients {
		for i := 0; i < n; i++ {
			l.wg.Add(1)
			go func(code string) {
				defer l.wg.Done()
				for {
					select {
					case <-l.stop:
						return
					case <-time.After(pause):
					}
					r := runSearch(front, code, 20*time.Second)
					l.mu.Lock()
					l.searches = append(l.searches, r)
					l.mu.Unlock()
				}
			}(code)
		}
	}
	return l
}

// done stops the clients and returns every search they ran.
func (l *load) done() []search {
	close(l.stop)
	l.wg.Wait()
	return l.searches
}

// failures are the searches that were refused or not whole.
func failures(searches []search) []search {
	var bad []search
	for _, s := range searches {
		if s.refused != "" || s.problem != "" {
			bad = append(bad, s)
		}
	}
	return bad
}

// TestDrainThroughNginx: a drained instance answers a new upgrade 503 and
// /health 503 "draining" with its open sessions; nginx retries the upgrade
// on the other instance without the client noticing; the search the
// drained one runs goes on to its normal end; it then says drained, and
// SIGUSR1 makes it take sessions again.
func TestDrainThroughNginx(t *testing.T) {
	a := startServer(t, nil, deployArgs...)
	b := startServer(t, nil, deployArgs...)
	front, dir := startNginxUpstream(t, []string{
		"server " + strings.TrimPrefix(a.URL, "http://") + " max_fails=3 fail_timeout=10s;",
		"server " + strings.TrimPrefix(b.URL, "http://") + " max_fails=3 fail_timeout=10s;",
	})

	long := make(chan search, 1)
	go func() { long <- runSearch(a, "wait-2000", 10*time.Second) }()
	eventually(t, 5*time.Second, func() string {
		if n := a.stats(t).SessionAlive; n != 1 {
			return fmt.Sprintf("%d sessions on a, want the long one", n)
		}
		return ""
	})
	if err := a.Cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, func() string {
		if code, h := health(t, a); code != 503 || h["status"] != "draining" || h["sessions"] != 1.0 {
			return fmt.Sprintf("/health of a drained instance: %d %v, want 503 draining with 1 session", code, h)
		}
		return ""
	})
	if _, resp, err := websocket.DefaultDialer.Dial(a.WS+"/ws", nil); err == nil || resp == nil || resp.StatusCode != 503 {
		t.Errorf("a new upgrade at the drained instance: %v %v, want 503", err, resp)
	}

	for i := 0; i < 12; i++ {
		r := runSearch(front, "wait-10", 10*time.Second)
		if r.refused != "" || r.problem != "" || r.server != b.Cmd.Process.Pid {
			t.Fatalf("search %d through nginx: refused %q, problem %q, served by %d (b is %d)",
				i, r.refused, r.problem, r.server, b.Cmd.Process.Pid)
		}
	}
	retried := 0
	for _, line := range strings.Split(readFile(t, filepath.Join(dir, "access.log")), "\n") {
		if strings.HasPrefix(line, "/ws ") && strings.Contains(line, "st=503, 101") {
			retried++
		}
	}
	if retried == 0 {
		t.Errorf("nginx never retried an upgrade the drained instance refused; access.log:\n%s", readFile(t, filepath.Join(dir, "access.log")))
	}

	if r := <-long; r.problem != "" || r.refused != "" || r.server != a.Cmd.Process.Pid {
		t.Errorf("the search in flight on the drained instance: refused %q, problem %q, server %d", r.refused, r.problem, r.server)
	}
	eventually(t, 5*time.Second, func() string {
		if _, h := health(t, a); h["sessions"] != 0.0 || !strings.Contains(a.Log(), "drained: no session left") {
			return fmt.Sprintf("not drained: /health %v", h)
		}
		return ""
	})

	if err := a.Cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, func() string {
		if code, _ := health(t, a); code != 200 {
			return fmt.Sprintf("/health after SIGUSR1: %d", code)
		}
		return ""
	})
	if r := runSearch(a, "wait-10", 10*time.Second); r.refused != "" || r.problem != "" {
		t.Errorf("a search after SIGUSR1: refused %q, problem %q", r.refused, r.problem)
	}
}

// TestUntilWarmTakesNothingBroken: with aggregator.drain.until-warm an
// instance whose PHP cannot start refuses sessions 503 (nginx would send
// them elsewhere) instead of taking them to fail E_SCRIPT_START.
func TestUntilWarmTakesNothingBroken(t *testing.T) {
	broken := filepath.Join(t.TempDir(), "handlers.php")
	if err := os.WriteFile(broken, []byte("<?php return [ syntax error"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServerNoWait(t, nil, "-Daggregator.pool.executor=1", "-Daggregator.worker.handlers="+broken,
		"-Daggregator.drain.until-warm=true")
	eventually(t, 5*time.Second, func() string {
		if code, h := health(t, s); code != 503 || h["status"] != "down" {
			return fmt.Sprintf("/health: %d %v, want 503 down", code, h)
		}
		return ""
	})
	_, resp, err := websocket.DefaultDialer.Dial(s.WS+"/ws", nil)
	if err == nil || resp == nil || resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("an upgrade while PHP cannot start: %v %v, want 503 with Retry-After", err, resp)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDeployRolls: `aggregatorctl deploy` replaces two instances behind
// real nginx one at a time while clients search through it without pause,
// some searches spanning the drains: not one search is refused or loses a
// message. A release whose PHP cannot start is rolled back after the first
// instance, the second one never touched, again without a failed search.
// Services run under deploy/test/fake-systemctl (no systemd here), which
// runs the ExecStart of the unit aggregatorctl installed.
func TestDeployRolls(t *testing.T) {
	h := newDeployHost(t)
	p1, p2 := h.ports[0], h.ports[1]
	if out, err := h.ctl(t, "install", h.release(t, "v1", false)); err != nil {
		t.Fatalf("install v1: %v\n%s", err, out)
	}
	front, nginxDir := startNginxUpstream(t, h.upstream(t))
	old := [2]int{h.pid(p1), h.pid(p2)}

	// Six long searches at once, spread by least_conn: each instance has
	// some in flight when it is drained.
	l := startLoad(front, map[string]int{"wait-20": 3, "wait-2000": 6}, 50*time.Millisecond)
	time.Sleep(3 * time.Second)
	began := time.Now()
	out, err := h.ctl(t, "deploy", h.release(t, "v2", false))
	took := time.Since(began)
	if err != nil {
		l.done()
		t.Fatalf("deploy v2: %v\n%s", err, out)
	}
	t.Logf("deploy v2 took %v:\n%s", took.Round(time.Millisecond), out)
	deployed := time.Now()
	rolled := [2]int{h.pid(p1), h.pid(p2)}
	time.Sleep(2 * time.Second)

	// A release whose PHP cannot start: rolled back after the first instance
	// (its workers fail at once, so 5 s of health checks are enough).
	env := h.env
	h.env = append(env[:len(env):len(env)], "AGG_HEALTH_TIMEOUT=5")
	outBad, errBad := h.ctl(t, "deploy", h.release(t, "v3", true))
	h.env = env
	t.Logf("deploy v3 (broken):\n%s", outBad)
	time.Sleep(2 * time.Second)
	searches := l.done()

	if errBad == nil || !strings.Contains(outBad, "did not become healthy on "+h.unit(p1)) ||
		!strings.Contains(outBad, h.unit(p2)+" not touched") {
		t.Errorf("deploy of a broken release: %v, want a failure naming %s and %s untouched:\n%s", errBad, h.unit(p1), h.unit(p2), outBad)
	}
	if got := h.pid(p2); got != rolled[1] {
		t.Errorf("the broken deploy restarted %s (pid %d -> %d)", h.unit(p2), rolled[1], got)
	}

	checkWhole(t, searches)
	checkDrains(t, h, searches, old, rolled)
	for _, s := range searches {
		if s.start.After(deployed) && s.problem == "" && s.refused == "" && s.release != "v2" {
			t.Errorf("a search after the deploy was served by release %q", s.release)
			break
		}
	}
	checkUpgrades(t, nginxDir)

	if out, err := h.ctl(t, "stop"); err != nil {
		t.Errorf("stop: %v\n%s", err, out)
	}
	eventually(t, 10*time.Second, func() string {
		if left := h.underPrefix(); len(left) > 0 {
			return fmt.Sprintf("processes left after stop:\n%s", strings.Join(left, "\n"))
		}
		return ""
	})
}

// checkWhole: no search was refused or lost a message.
func checkWhole(t *testing.T, searches []search) {
	t.Helper()
	bad := failures(searches)
	t.Logf("%d searches, %d refused or incomplete", len(searches), len(bad))
	for i, s := range bad {
		if i == 10 {
			break
		}
		t.Errorf("search %s at %v: refused %q, problem %q", s.code, s.start.Format("15:04:05.000"), s.refused, s.problem)
	}
}

// checkDrains: each instance (main pid old[i] before the deploy, rolled[i]
// after it) took no search once its drain began, and a search it ran then
// went on to its end.
func checkDrains(t *testing.T, h *deployHost, searches []search, old, rolled [2]int) {
	t.Helper()
	for i, port := range h.ports {
		drain := h.drainedAt(t, port)
		spanned := 0
		for _, s := range searches {
			if s.server != old[i] || s.refused != "" {
				continue
			}
			if s.start.After(drain.Add(5 * time.Millisecond)) { // the log's clock has milliseconds
				t.Errorf("%s took a search after its drain began: %+v", h.unit(port), s)
			}
			if s.start.Before(drain) && s.end.After(drain) && s.problem == "" {
				spanned++
			}
		}
		if spanned == 0 {
			t.Errorf("no search spanned the drain of %s (pid %d)", h.unit(port), old[i])
		}
		if rolled[i] == old[i] {
			t.Errorf("%s was not restarted", h.unit(port))
		}
	}
}

// checkUpgrades: nginx (its logs in dir) answered every websocket 101,
// some after a retry on the other instance (a 503 or a refused connection
// first).
func checkUpgrades(t *testing.T, dir string) {
	t.Helper()
	retried, wrong := 0, 0
	for _, line := range strings.Split(readFile(t, filepath.Join(dir, "access.log")), "\n") {
		if !strings.HasPrefix(line, "/ws ") {
			continue
		}
		if !strings.HasPrefix(line, "/ws 101 ") {
			t.Errorf("nginx answered a websocket with other than 101: %s", line)
			wrong++
		}
		if strings.Contains(line, ", ") {
			retried++
		}
	}
	t.Logf("nginx retried %d upgrades on the other instance", retried)
	if wrong > 0 { // what nginx thought of the instances then
		for _, line := range strings.Split(readFile(t, filepath.Join(dir, "error.log")), "\n") {
			if strings.Contains(line, "upstream") {
				t.Log(line)
			}
		}
	}
}

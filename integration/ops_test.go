package integration

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/theaspect/aggregator/internal/procstat"
)

// TestSigterm: SIGTERM while scripts sleep closes every session with 1001,
// exits 0 within seconds, and leaves no PHP process behind.
func TestSigterm(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, nil, "-Daggregator.pool.mode="+mode, "-Daggregator.pool.executor=6",
				"-Daggregator.timeout.script=30", "-Daggregator.timeout.session=60")
			var conns []*websocket.Conn
			for i := 0; i < 3; i++ {
				c := s.dial(t, "/ws")
				defer c.Close()
				if err := c.WriteMessage(websocket.TextMessage, []byte(request("itemsTimeout"))); err != nil {
					t.Fatal(err)
				}
				conns = append(conns, c)
			}
			var pids map[int]string
			eventually(t, 15*time.Second, func() string {
				pids = phpChildren(t, s.Cmd.Process.Pid)
				n := 0
				for _, cmd := range pids {
					if strings.Contains(cmd, "items.php") || strings.Contains(cmd, "worker.php") {
						n++
					}
				}
				if s.stats(t).TaskPending < 9 || n < 6 {
					return fmt.Sprintf("scripts not running yet: stats %+v, %v", s.stats(t), pids)
				}
				return ""
			})
			start := time.Now()
			_ = s.Cmd.Process.Signal(syscall.SIGTERM)
			for _, c := range conns {
				r := readAll(t, c, 10*time.Second)
				if r.CloseCode != 1001 {
					t.Errorf("close code %d, want 1001", r.CloseCode)
				}
			}
			select {
			case <-s.exited:
			case <-time.After(8 * time.Second):
				t.Fatal("server still running 8 s after SIGTERM")
			}
			if d := time.Since(start); d > 6*time.Second {
				t.Errorf("stop took %v", d)
			}
			if code := s.Cmd.ProcessState.ExitCode(); code != 0 {
				t.Errorf("exit code %d, want 0", code)
			}
			for pid, cmd := range pids {
				if procstat.Alive(pid) {
					t.Errorf("PHP process %d (%s) outlived the server", pid, cmd)
				}
			}
		})
	}
}

// TestSigkillLeavesNoWorkers: even a SIGKILLed server leaves no worker behind.
func TestSigkillLeavesNoWorkers(t *testing.T) {
	s := startServer(t, nil, "-Daggregator.pool.executor=3")
	var pids map[int]string
	eventually(t, 5*time.Second, func() string {
		pids = phpChildren(t, s.Cmd.Process.Pid)
		if len(pids) < 3 {
			return fmt.Sprintf("workers: %v", pids)
		}
		return ""
	})
	_ = s.Cmd.Process.Kill()
	<-s.exited
	eventually(t, 3*time.Second, func() string {
		for pid := range pids {
			if procstat.Alive(pid) {
				return fmt.Sprintf("worker %d outlived the SIGKILLed server", pid)
			}
		}
		return ""
	})
}

// TestStatsInvariantsUnderLoad samples /stats while mixed sessions run.
func TestStatsInvariantsUnderLoad(t *testing.T) {
	s := startServer(t, nil, "-Daggregator.timeout.script=1", "-Daggregator.pool.executor=8")
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			code := []string{"mixed", "normal", "analog", "itemsError"}[i%4]
			r := s.session(t, 20*time.Second, request(code))
			if r.CloseCode != 1000 {
				t.Errorf("%s: close %d", code, r.CloseCode)
			}
		}(i)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	samples := 0
	for {
		st := s.stats(t)
		samples++
		if st.SessionTotal != st.SessionAlive+st.SessionFinished || st.TaskTotal != st.TaskPending+st.TaskSucceeded+st.TaskFailed {
			t.Fatalf("invariants broken: %+v", st)
		}
		select {
		case <-done:
			st := s.stats(t)
			if st.SessionTotal != 20 || st.SessionFinished != 20 || st.TaskPending != 0 {
				t.Errorf("final stats %+v", st)
			}
			t.Logf("%d samples, final %+v", samples, st)
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestLogs: the log file has session and task ids and PHP's stderr, and
// rotates at its size.
func TestLogs(t *testing.T) {
	s := startServer(t, nil, "-Daggregator.pool.mode=exec", "-Dlogging.level.me.blzr.aggregator=DEBUG",
		"-Daggregator.log.max-size=1", "-Daggregator.log.max-files=3",
		"-Daggregator.timeout.script=10", "-Daggregator.timeout.session=2")
	r := s.session(t, 10*time.Second, request("itemsError"))
	if r.CloseCode != 1000 {
		t.Fatalf("close %d", r.CloseCode)
	}
	session := r.Msgs[0].str("_session")
	task := r.Msgs[0].id()
	eventually(t, 3*time.Second, func() string {
		b, _ := os.ReadFile(s.LogFile)
		log := string(b)
		for _, want := range []string{
			fmt.Sprintf(`"session": "%s"`, session),
			fmt.Sprintf(`"task": %d`, task),
			"handler failed", // the error script's exception, as one line
			"task queued",    // DEBUG trail
			"task succeeded", // DEBUG trail of the suppliers task
			"E_SCRIPT_ERROR", // the outcome
		} {
			if !strings.Contains(log, want) {
				return fmt.Sprintf("log lacks %q:\n%s", want, log)
			}
		}
		// What PHP reports names the session, task and pid it came from.
		for _, line := range strings.Split(log, "\n") {
			if strings.Contains(line, "handler failed") && strings.Contains(line, fmt.Sprintf(`"task": %d`, task)) {
				if !strings.Contains(line, `"pid":`) || !strings.Contains(line, fmt.Sprintf(`"session": "%s"`, session)) {
					return "handler failed line without pid or session: " + line
				}
				return ""
			}
		}
		return "no handler failed line for task " + fmt.Sprint(task)
	})
	// 2000-task sessions at DEBUG write about 0.5 MB each: the log rotates.
	rotated := func() bool {
		files, _ := filepath.Glob(filepath.Join(filepath.Dir(s.LogFile), "aggregator-*.log"))
		return len(files) > 0
	}
	for i := 0; i < 6 && !rotated(); i++ {
		s.session(t, 10*time.Second, request("sessionTimeout"))
	}
	if !rotated() {
		t.Fatal("no rotated log file after 6 sessions of 2000 tasks at DEBUG")
	}
	if st, err := os.Stat(s.LogFile); err != nil || st.Size() > 1<<20 {
		t.Errorf("current log %v %v, want at most 1 MB", st, err)
	}
}

// TestMetricsAndHealth: /metrics speaks Prometheus with aggregator_ names
// that count what happened; /health says whether PHP can run.
func TestMetricsAndHealth(t *testing.T) {
	s := startServer(t, nil, "-Daggregator.pool.executor=3")
	s.session(t, 10*time.Second, request("itemsError"))
	var text string
	eventually(t, 5*time.Second, func() string {
		resp, err := http.Get(s.URL + "/metrics")
		if err != nil {
			return err.Error()
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		text = string(body)
		if !strings.Contains(text, "aggregator_workers_idle 3") {
			return "workers not all idle:\n" + text
		}
		return ""
	})
	for _, want := range []string{
		`aggregator_sessions_total 1`,
		`aggregator_sessions_ended_total{reason="done"} 1`,
		`aggregator_tasks_total{kind="items",outcome="E_SCRIPT_ERROR"} 2`,
		`aggregator_tasks_total{kind="suppliers",outcome="SUCCESS"} 1`,
		`aggregator_task_duration_seconds_bucket{kind="items"`,
		`aggregator_queue_length 0`,
		`aggregator_workers_busy 0`,
		`aggregator_worker_starts_total{result="ok"} 3`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !strings.HasPrefix(line, "aggregator_") && !strings.HasPrefix(line, "go_") && !strings.HasPrefix(line, "process_") {
			t.Errorf("metric outside our namespaces: %s", line)
		}
	}
	// A handlers file with a syntax error: no worker can start.
	bad := startServerNoWait(t, nil, "-Daggregator.worker.handlers=pool/testdata/broken.php")
	eventually(t, 5*time.Second, func() string {
		resp, err := http.Get(bad.URL + "/health")
		if err != nil {
			return err.Error()
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 503 || !strings.Contains(string(b), "syntax error") {
			return fmt.Sprintf("health %d %s, want 503 naming PHP's syntax error", resp.StatusCode, b)
		}
		return ""
	})
	// ... and searches fail fast with E_SCRIPT_START, not after the timeout.
	start := time.Now()
	r := bad.session(t, 10*time.Second, request("normal"))
	if got := r.Errors(); len(got) != 1 || got[0] != "E_SCRIPT_START" {
		t.Errorf("errors %v, want E_SCRIPT_START", got)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("E_SCRIPT_START took %v", d)
	}
}

// TestConfigErrors: a bad value stops the start with one line naming the key and exit code 2.
func TestConfigErrors(t *testing.T) {
	cases := map[string]string{
		"-Daggregator.pool.mode=turbo":                       "aggregator.pool.mode",
		"-Daggregator.timeout.script=soon":                   "aggregator.timeout.script",
		"-Daggregator.pool.executor=0":                       "aggregator.pool.executor",
		"-Daggregator.worker.handlers=script/nope.php":       "aggregator.worker.handlers",
		"-Daggregator.worker.command=php nowhere/worker.php": "aggregator.worker.command",
		"-Dlogging.level.me.blzr.aggregator=LOUD":            "logging.level.me.blzr.aggregator",
		"-Dserver.port=http":                                 "server.port",
	}
	for arg, key := range cases {
		t.Run(key, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(binary, arg)
			cmd.Dir = repoRoot
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("exit %v, want code 2; output %q", err, out)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], key) {
				t.Errorf("output %q, want one line naming %s", out, key)
			}
		})
	}
	t.Run("exec script missing", func(t *testing.T) {
		cmd := exec.Command(binary, "-Daggregator.pool.mode=exec", "-Daggregator.script.items=php script/gone.php")
		cmd.Dir = repoRoot
		out, _ := cmd.CombinedOutput()
		if cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(out), "aggregator.script.items") {
			t.Errorf("exit %d output %q", cmd.ProcessState.ExitCode(), out)
		}
	})
}

// TestReloadUnderLoad: SIGHUP replaces every worker while sessions run; no task fails.
func TestReloadUnderLoad(t *testing.T) {
	s := startServer(t, nil, "-Daggregator.pool.executor=4")
	before := workerPIDs(t, s)
	var mu sync.Mutex
	sessions := 0
	stop := repeatUntilStopped(4, func() {
		r := s.session(t, 20*time.Second, request("analog"))
		if r.CloseCode != 1000 || r.Count("SUCCESS") != 5 || len(r.Errors()) != 0 {
			t.Errorf("session during reload: close %d, %d SUCCESS, errors %v", r.CloseCode, r.Count("SUCCESS"), r.Errors())
		}
		mu.Lock()
		sessions++
		mu.Unlock()
	})
	for i := 0; i < 3; i++ {
		time.Sleep(400 * time.Millisecond)
		_ = s.Cmd.Process.Signal(syscall.SIGHUP)
	}
	time.Sleep(400 * time.Millisecond)
	stop()
	eventually(t, 10*time.Second, func() string {
		after := workerPIDs(t, s)
		if len(after) != 4 {
			return fmt.Sprintf("%d workers after reload", len(after))
		}
		for pid := range after {
			if before[pid] {
				return fmt.Sprintf("worker %d survived the reload", pid)
			}
		}
		return ""
	})
	t.Logf("%d sessions ran across 3 reloads", sessions)
}

func workerPIDs(t *testing.T, s *Server) map[int]bool {
	t.Helper()
	out := map[int]bool{}
	for _, x := range s.workers(t) {
		if x.State == "idle" || x.State == "busy" {
			out[x.PID] = true
		}
	}
	return out
}

package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// versionHandlers is a handlers file whose one supplier answers one item
// carrying version v; broken makes it a file PHP cannot parse.
func versionHandlers(v int, broken bool) string {
	bad := ""
	if broken {
		bad = "this is not PHP;\n"
	}
	return fmt.Sprintf(`<?php
declare(strict_types=1);
%sreturn [
    'suppliers' => fn (array $r): array => ['suppliers' => [['class' => 'v-1', 'info' => ['v' => %d]]]],
    'items' => fn (array $s): array => ['items' => [['code' => 'c', 'brand' => 'b', 'name' => 'n', 'price' => 1, 'quantity' => 1, 'version' => %d]]],
];
`, bad, v, v)
}

// itemVersion runs a search and returns its one item's version, or the
// session's outcome when it is not one item.
func itemVersion(t *testing.T, s *Server) string {
	r := s.session(t, 20*time.Second, request("normal"))
	for _, m := range r.Msgs {
		if m.str("_status") == "SENDING" {
			return fmt.Sprint(m["version"])
		}
	}
	return fmt.Sprintf("no item: close %d, errors %v", r.CloseCode, r.Errors())
}

// health is /health's status code and answer.
func health(t *testing.T, s *Server) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(s.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&h)
	return resp.StatusCode, h
}

// TestBrokenReload (SPEC §16): SIGHUP with a handlers file that does not
// parse keeps the running workers serving the old code; the log and
// /health say the reload failed and why; a fix and SIGHUP take effect.
func TestBrokenReload(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "handlers.php")
	write := func(v int, broken bool) {
		if err := os.WriteFile(file, []byte(versionHandlers(v, broken)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(1, false)
	s := startServer(t, nil, "-Daggregator.worker.handlers="+file, "-Daggregator.pool.executor=2")
	if v := itemVersion(t, s); v != "1" {
		t.Fatalf("version %s", v)
	}
	write(2, true)
	_ = s.Cmd.Process.Signal(syscall.SIGHUP)
	eventually(t, 10*time.Second, func() string {
		if !strings.Contains(s.Log(), "reload failed, still serving the previous code") {
			return "no reload failed line:\n" + s.Log()
		}
		return ""
	})
	code, h := health(t, s)
	if code != 200 || h["status"] != "degraded" || !strings.Contains(fmt.Sprint(h["reason"]), "syntax error") {
		t.Errorf("/health %d %v, want 200 degraded naming PHP's error", code, h)
	}
	for i := 0; i < 5; i++ {
		if v := itemVersion(t, s); v != "1" {
			t.Fatalf("search %d during the failed reload: %s, want the old code's answer", i, v)
		}
	}
	write(3, false)
	_ = s.Cmd.Process.Signal(syscall.SIGHUP)
	eventually(t, 5*time.Second, func() string {
		if v := itemVersion(t, s); v != "3" {
			return "the fixed code does not serve: " + v
		}
		if code, h := health(t, s); code != 200 || h["status"] != "ok" {
			return fmt.Sprintf("/health %d %v", code, h)
		}
		return ""
	})
}

// TestKillStartingWorkers: workers killed again and again, their
// replacements too while they start, fail some jobs with E_SCRIPT_ERROR
// but never E_SCRIPT_START: a signal is not a broken configuration. Not
// parallel: it starts PHP all the time, which would slow the other tests.
func TestKillStartingWorkers(t *testing.T) {
	s := startServer(t, []string{"DEMO_DELAY_MS=5"}, "-Daggregator.pool.executor=2")
	var mu sync.Mutex
	outcomes := map[string]int{}
	stop := repeatUntilStopped(6, func() {
		r := s.session(t, 20*time.Second, request("normal"))
		mu.Lock()
		defer mu.Unlock()
		outcomes[fmt.Sprintf("close %d", r.CloseCode)]++
		for _, e := range r.Errors() {
			outcomes[e]++
		}
		outcomes["SUCCESS"] += r.Count("SUCCESS")
	})
	kills := 0
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(30 * time.Millisecond) {
		for pid := range phpChildren(t, s.Cmd.Process.Pid) {
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				kills++
			}
		}
	}
	stop()
	t.Logf("%d kills; outcomes %v", kills, outcomes)
	if outcomes["E_SCRIPT_START"] > 0 {
		t.Errorf("%d tasks failed E_SCRIPT_START for workers killed by a signal", outcomes["E_SCRIPT_START"])
	}
	for k, n := range outcomes {
		if strings.HasPrefix(k, "close ") && k != "close 1000" {
			t.Errorf("%d sessions ended with %s", n, k)
		}
	}
	if outcomes["SUCCESS"] == 0 || kills < 20 {
		t.Errorf("%d successes, %d kills: the test did not exercise anything", outcomes["SUCCESS"], kills)
	}
	r := s.session(t, 20*time.Second, request("normal"))
	if r.CloseCode != 1000 || r.Count("SUCCESS") != 3 {
		t.Errorf("after the kills: close %d, %d SUCCESS, errors %v", r.CloseCode, r.Count("SUCCESS"), r.Errors())
	}
}

package pool

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/theaspect/aggregator"
)

// Reloads, starts and exits that must not take the service down or leave
// processes behind (SPEC §16, issue "reliability, round two").

// writeVersion writes testdata/version.php answering version v to file,
// or, with broken, a file PHP cannot parse.
func writeVersion(t *testing.T, file string, v int, broken bool) {
	t.Helper()
	src, err := os.ReadFile(fixture(t, "version.php"))
	if err != nil {
		t.Fatal(err)
	}
	code := strings.Replace(string(src), "const VERSION = 1;", "const VERSION = "+strconv.Itoa(v)+";", 1)
	if broken {
		code = strings.Replace(code, "declare(strict_types=1);", "declare(strict_types=1);\n\nthis is not PHP;", 1)
	}
	if err := os.WriteFile(file, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
}

// version runs a job and returns the version its worker answers.
func version(t *testing.T, r Runner) string {
	t.Helper()
	return string(mustRun(t, r, Items, `{}`).Output)
}

// servesOn checks that n jobs in a row are answered by the first version
// of the code, and that the workers are still those of before.
func servesOn(t *testing.T, s *Supervisor, before []int, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if v := version(t, s); v != `{"version":1}` {
			t.Fatalf("job %d: %s, want the previous code", i, v)
		}
	}
	if now := pids(s); !slices.Equal(now, before) {
		t.Errorf("workers %v, want the old ones %v serving on", now, before)
	}
}

// TestReloadBrokenCode: a reload whose code cannot start leaves the old
// workers serving, says so in the log (once) and in Health; a fixed file
// and another reload take effect without waiting for a backoff.
func TestReloadBrokenCode(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "handlers.php")
	writeVersion(t, file, 1, false)
	log, logs := observedLog()
	cfg := workerConfig(t, "echo.php")
	cfg.Handlers, cfg.Workers, cfg.Log = file, 2, log
	s := startSupervisor(t, cfg)
	before := pids(s)
	if v := version(t, s); v != `{"version":1}` {
		t.Fatalf("answer %s", v)
	}

	writeVersion(t, file, 2, true)
	s.Reload()
	eventually(t, 10*time.Second, "no \"reload failed\" line", func() bool {
		return logs.FilterMessage("reload failed, still serving the previous code").Len() == 1
	})
	h := s.Health()
	if h.Status != aggregator.HealthDegraded || !strings.Contains(h.Reason, "reload failed") || !strings.Contains(h.Reason, "syntax error") {
		t.Errorf("Health %+v, want degraded naming PHP's error", h)
	}
	servesOn(t, s, before, 10)
	if n := logs.FilterMessage("reload failed, still serving the previous code").Len(); n != 1 {
		t.Errorf("%d reload failed lines, want 1 for one reload", n)
	}

	writeVersion(t, file, 3, false)
	s.Reload()
	eventually(t, 5*time.Second, "the fixed code does not serve", func() bool { return version(t, s) == `{"version":3}` })
	for _, pid := range before {
		waitDead(t, pid, "an old worker")
	}
	if h := s.Health(); h.Status != aggregator.HealthOK {
		t.Errorf("Health %+v after the fix", h)
	}
	if logs.FilterMessage("reload succeeded: the new code starts").Len() != 1 {
		t.Error("no line says the reload succeeded")
	}
}

// TestReloadsCoalesce: reloads asked for in a burst start one generation
// of workers, not one each.
func TestReloadsCoalesce(t *testing.T) {
	t.Parallel()
	log, logs := observedLog()
	cfg := workerConfig(t, "echo.php")
	cfg.Log = log
	s := startSupervisor(t, cfg)
	first := pids(s)[0]
	for i := 0; i < 20; i++ {
		s.Reload()
	}
	waitDead(t, first, "the first worker")
	waitFull(t, s, 1)
	eventually(t, 5*time.Second, "the last reload did not happen", func() bool {
		return logs.FilterMessage("reloading workers: new ones first").Len() == 2
	})
	time.Sleep(reloadSpacing + 200*time.Millisecond) // nothing more is due
	if n := logs.FilterMessage("reloading workers: new ones first").Len(); n != 2 {
		t.Errorf("%d reloads for a burst of 20, want 2 (the first, then one for the rest)", n)
	}
	mustRun(t, s, Items, `{}`)
}

// startingPHP finds the PHP process (our child) whose command line names
// file, or 0.
func startingPHP(file string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		stat, _ := os.ReadFile("/proc/" + e.Name() + "/stat")
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(os.Getpid()) && strings.Contains(string(cmd), file) {
			return pid
		}
	}
	return 0
}

// TestKilledWhileStarting: a worker killed by a signal while it starts is
// not a broken configuration: jobs wait for its replacement and succeed,
// Health never says the code cannot start.
func TestKilledWhileStarting(t *testing.T) {
	t.Parallel()
	log, logs := observedLog()
	cfg := workerConfig(t, "slowboot.php")
	cfg.Env = append(cfg.Env, "SLOWBOOT_MS=2000") // long enough that every kill lands while it starts
	cfg.Log = log
	s := NewSupervisor(cfg)
	t.Cleanup(func() { closeWithin(t, s, 20*time.Second) })
	done := make(chan error, 1)
	go func() {
		_, err := run(t, s, Items, `{"a":1}`)
		done <- err
	}()
	for kill := 0; kill < 3; kill++ {
		var pid int
		eventually(t, 10*time.Second, "no starting worker to kill", func() bool { pid = startingPHP("slowboot.php"); return pid != 0 })
		_ = syscall.Kill(pid, syscall.SIGKILL)
		waitDead(t, pid, "the starting worker")
		if h := s.Health(); h.Status == aggregator.HealthDown && h.Reason != "no PHP worker is running yet" {
			t.Errorf("Health %+v after a kill at start: a kill is not a broken configuration", h)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("the job: %v, want it to wait for a worker that starts", err)
	}
	if n := logs.FilterMessage("worker start failed").Len(); n != 0 {
		t.Errorf("%d \"worker start failed\" lines for kills", n)
	}
	if n := logs.FilterMessage("worker killed while it started; starting another").Len(); n != 3 {
		t.Errorf("%d lines about workers killed at start, want 3", n)
	}
}

// TestExitsKillChildren: what a handler started in the background dies
// with its worker on every way out — recycled after max-jobs, retired by a
// reload, killed by Close.
func TestExitsKillChildren(t *testing.T) {
	t.Parallel()
	child := func(res Result) int {
		var pid int
		s := strings.TrimPrefix(strings.TrimSuffix(string(res.Output), "}"), `{"child":`)
		pid, _ = strconv.Atoi(s)
		if pid <= 0 {
			t.Fatalf("answer %s", res.Output)
		}
		return pid
	}
	for _, way := range []string{"max_jobs", "reload", "close"} {
		t.Run(way, func(t *testing.T) {
			t.Parallel()
			reg := prometheus.NewRegistry()
			cfg := workerConfig(t, "forker.php")
			cfg.Metrics = NewMetrics(reg)
			if way == "max_jobs" {
				cfg.MaxJobs = 1
			}
			s := NewSupervisor(cfg)
			waitFull(t, s, 1)
			pid := child(mustRun(t, s, Items, `{}`))
			killAtEnd(t, pid)
			switch way {
			case "reload":
				s.Reload()
			case "close":
				closeWithin(t, s, 10*time.Second)
			}
			waitDead(t, pid, "the handler's background child ("+way+")")
			if way != "close" {
				waitFull(t, s, 1)
				mustRun(t, s, Items, `{}`)
				if n := counter(t, reg, "aggregator_worker_restarts_total", way); n != 1 {
					t.Errorf("%v restarts for %s", n, way)
				}
				closeWithin(t, s, 10*time.Second)
			}
		})
	}
}

// TestModesAgree: the same PHP behaviour gives the same code in both modes:
// a script whose background child holds stdout still answers; exit(0)
// with no answer fails E_SCRIPT_ERROR.
func TestModesAgree(t *testing.T) {
	t.Parallel()
	cfg := execConfig(t)
	cfg.Suppliers = []string{"php", "-d", "display_errors=stderr", fixture(t, "exec_forker.php")}
	cfg.Items = []string{"php", "-d", "display_errors=stderr", fixture(t, "exec_silent.php")}
	e := newExec(t, cfg)
	res, err := run(t, e, Suppliers, `{}`)
	if err != nil {
		t.Fatalf("a script whose child holds stdout: %v, want its answer", err)
	}
	var out struct{ Child int }
	_ = json.Unmarshal(res.Output, &out)
	if out.Child <= 0 {
		t.Fatalf("answer %s", res.Output)
	}
	killAtEnd(t, out.Child)
	waitDead(t, out.Child, "the script's background child")

	_, execErr := run(t, e, Items, `{}`)
	w := startSupervisor(t, workerConfig(t, "crash.php"))
	_, workerErr := run(t, w, Items, `{"exit":0}`)
	for mode, err := range map[string]error{"exec": execErr, "worker": workerErr} {
		if !isCode(err, aggregator.EScriptError) {
			t.Errorf("%s: exit(0) without an answer: %v, want E_SCRIPT_ERROR", mode, err)
		}
	}
}

// TestRecycleBrokenCode: a worker at its max-jobs whose replacement cannot
// start (the code on disk is broken, no reload yet) serves on and is not
// replaced again until a reload: its slot does not start PHP in a loop.
func TestRecycleBrokenCode(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "handlers.php")
	writeVersion(t, file, 1, false)
	log, logs := observedLog()
	reg := prometheus.NewRegistry()
	cfg := workerConfig(t, "echo.php")
	cfg.Handlers, cfg.MaxJobs, cfg.Log, cfg.Metrics = file, 1, log, NewMetrics(reg)
	s := startSupervisor(t, cfg)
	first := pids(s)

	writeVersion(t, file, 2, true)
	if v := version(t, s); v != `{"version":1}` { // its max-jobs: it asks to be replaced
		t.Fatalf("answer %s", v)
	}
	eventually(t, 10*time.Second, "no line says the worker serves on", func() bool {
		return logs.FilterMessage("cannot replace the worker: the code on disk does not start; it serves on until a reload").Len() > 0
	})
	time.Sleep(time.Second)
	if n := counter(t, reg, "aggregator_worker_starts_total", "failed"); n != 1 {
		t.Errorf("%v failed starts, want 1: the worker waits for a reload to be replaced", n)
	}
	servesOn(t, s, first, 3)

	writeVersion(t, file, 3, false)
	s.Reload()
	eventually(t, 5*time.Second, "the fixed code does not serve", func() bool { return version(t, s) == `{"version":3}` })
}

package pool

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/theaspect/aggregator"
	"github.com/theaspect/aggregator/internal/procstat"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// repoRoot is the module root: the parent of the package directory, which is
// where `go test` runs the tests.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "worker.php")); err != nil {
		t.Fatalf("repo root %s has no worker.php: %v", dir, err)
	}
	return dir
}

// fixture is the absolute path of a handlers file in pool/testdata.
func fixture(t testing.TB, name string) string {
	return filepath.Join(repoRoot(t), "pool", "testdata", name)
}

// workerConfig is a one-worker config for the handlers file testdata/<name>.
func workerConfig(t testing.TB, name string) WorkerConfig {
	root := repoRoot(t)
	return WorkerConfig{
		Command:  []string{"php", "-d", "display_errors=stderr", filepath.Join(root, "worker.php")},
		Handlers: fixture(t, name),
		Dir:      root,
		Env:      os.Environ(),
		Workers:  1,
	}
}

// startSupervisor starts a supervisor, closes it when the test ends, and
// waits until all its workers are up.
func startSupervisor(t testing.TB, cfg WorkerConfig) *Supervisor {
	t.Helper()
	s := NewSupervisor(cfg)
	t.Cleanup(func() { closeWithin(t, s, 20*time.Second) })
	waitFull(t, s, cfg.Workers)
	return s
}

// closeWithin closes r, failing the test if Close hangs.
func closeWithin(t testing.TB, r io.Closer, d time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		_ = r.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Errorf("Close did not return within %v", d)
	}
}

// eventually polls cond every 10 ms until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitFull waits until the supervisor has n live workers, all idle.
func waitFull(t testing.TB, s *Supervisor, n int) {
	t.Helper()
	eventually(t, 15*time.Second, "the pool is not at full size", func() bool {
		info := s.Info()
		if len(info) != n {
			return false
		}
		for _, p := range info {
			if p.State != "idle" {
				return false
			}
		}
		return true
	})
}

// waitReplaced waits until the worker pid has left the pool and the pool
// is full again. A dead worker (a zombie, to waitDead) is listed until its
// reader has seen its stream end and the process has been reaped.
func waitReplaced(t testing.TB, s *Supervisor, pid, n int, what string) {
	t.Helper()
	eventually(t, 15*time.Second, what+" is still listed", func() bool { return !slices.Contains(pids(s), pid) })
	waitFull(t, s, n)
}

// pids lists the pids of the live workers, sorted.
func pids(r aggregator.Monitor) []int {
	var out []int
	for _, p := range r.Info() {
		out = append(out, p.PID)
	}
	slices.Sort(out)
	return out
}

// groupAlive lists the live (non-zombie) processes of process group pgid.
func groupAlive(pgid int) []int {
	return procstat.Find(func(st procstat.Stat) bool { return st.PGRP == pgid && st.State != 'Z' })
}

// waitDead waits until pid is gone (or a zombie).
func waitDead(t testing.TB, pid int, what string) {
	t.Helper()
	eventually(t, 5*time.Second, what+" (pid "+strconv.Itoa(pid)+") is still alive", func() bool { return !procstat.Alive(pid) })
}

// killAtEnd makes sure a pid we stopped or started does not outlive the test.
func killAtEnd(t testing.TB, pid int) {
	t.Cleanup(func() {
		_ = syscall.Kill(pid, syscall.SIGCONT)
		if procstat.Alive(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}

// run runs a job with a timeout, for tests that expect it to finish.
func run(t testing.TB, r Runner, kind Kind, input string) (Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return r.Run(ctx, &Job{Kind: kind, Input: []byte(input), Session: "test"})
}

// mustRun runs a job that must succeed.
func mustRun(t testing.TB, r Runner, kind Kind, input string) Result {
	t.Helper()
	res, err := run(t, r, kind, input)
	if err != nil {
		t.Fatalf("job %s %s: %v", kind, input, err)
	}
	return res
}

// sameJSON reports whether a and b hold the same JSON value.
func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

// observedLog is a logger whose entries the test can read.
func observedLog() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	return zap.New(core), logs
}

// counter reads the value of a counter with the given label value from reg
// (0 when it was never incremented).
func counter(t testing.TB, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// errorsOnly collects unexpected errors from many goroutines.
type errorsOnly struct {
	mu   sync.Mutex
	errs []error
}

func (e *errorsOnly) add(err error) {
	e.mu.Lock()
	e.errs = append(e.errs, err)
	e.mu.Unlock()
}

func (e *errorsOnly) check(t testing.TB) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, err := range e.errs {
		if i == 10 {
			t.Errorf("... and %d more", len(e.errs)-10)
			break
		}
		t.Error(err)
	}
}

// The domain's names, short, for the tests.
type (
	Job    = aggregator.Job
	Result = aggregator.Result
	Kind   = aggregator.Kind
	Runner = aggregator.Runner
)

const (
	Suppliers = aggregator.Suppliers
	Items     = aggregator.Items
)

// isCode reports whether err carries the SPEC code.
func isCode(err error, code aggregator.Code) bool { return aggregator.ErrorCode(err) == code }

package pool

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/theaspect/aggregator"
	"go.uber.org/zap"

	"github.com/prometheus/client_golang/prometheus"
)

func TestSupervisorEcho(t *testing.T) {
	t.Parallel()
	cfg := workerConfig(t, "echo.php")
	cfg.Workers = 2
	s := startSupervisor(t, cfg)
	for _, kind := range []Kind{Suppliers, Items} {
		in := fmt.Sprintf(`{"kind":%q,"text":"Привет, 世界 🚀","list":[1,2,{"x":null}]}`, kind)
		res := mustRun(t, s, kind, in)
		if !sameJSON(res.Output, []byte(in)) {
			t.Errorf("%s: answer %s, want %s", kind, res.Output, in)
		}
		if !slices.Contains(pids(s), res.PID) {
			t.Errorf("%s: result pid %d is not a worker (%v)", kind, res.PID, pids(s))
		}
	}
	for i := 0; i < 100; i++ {
		in := fmt.Sprintf(`{"n":%d}`, i)
		kind := Kind(1 + i%2)
		if res := mustRun(t, s, kind, in); string(res.Output) != in {
			t.Fatalf("job %d: answer %s, want %s", i, res.Output, in)
		}
	}
	if h := s.Health(); h.Status != aggregator.HealthOK {
		t.Errorf("Health: %+v", h)
	}
}

func TestSupervisorConcurrent(t *testing.T) {
	t.Parallel()
	cfg := workerConfig(t, "echo.php")
	cfg.Workers = 4
	s := startSupervisor(t, cfg)
	var errs errorsOnly
	var wg sync.WaitGroup
	used := sync.Map{}
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				in := fmt.Sprintf(`{"g":%d,"i":%d,"pad":"%s"}`, g, i, strings.Repeat("p", (g*25+i)%300))
				res, err := run(t, s, Kind(1+(g+i)%2), in)
				if err != nil {
					errs.add(fmt.Errorf("g%d job %d: %w", g, i, err))
					continue
				}
				if string(res.Output) != in {
					errs.add(fmt.Errorf("g%d job %d: got someone else's answer %.80s", g, i, res.Output))
				}
				used.Store(res.PID, true)
			}
		}()
	}
	wg.Wait()
	errs.check(t)
	n := 0
	used.Range(func(_, _ any) bool { n++; return true })
	t.Logf("400 jobs ran on %d workers", n)
	if got := len(pids(s)); got != 4 {
		t.Errorf("%d workers after the jobs, want 4", got)
	}
}

func TestSupervisorTimeout(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	cfg := workerConfig(t, "sleep.php")
	cfg.Metrics = NewMetrics(reg)
	s := startSupervisor(t, cfg)
	before := pids(s)[0]

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := s.Run(ctx, &Job{Kind: Items, Input: []byte(`{"sleep":30}`)})
	if !isCode(err, aggregator.EScriptTimeout) {
		t.Fatalf("err %v, want ErrKilled", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("Run took %v to give up", time.Since(start))
	}
	if res.PID != before {
		t.Errorf("result pid %d, want the worker %d", res.PID, before)
	}
	waitDead(t, before, "the timed-out worker")
	waitReplaced(t, s, before, 1, "the timed-out worker")
	if after := pids(s)[0]; after == before {
		t.Errorf("the pool still has pid %d", after)
	}
	if res := mustRun(t, s, Items, `{"sleep":0,"ok":1}`); !sameJSON(res.Output, []byte(`{"sleep":0,"ok":1}`)) {
		t.Errorf("next job answered %s", res.Output)
	}
	if n := counter(t, reg, "aggregator_worker_restarts_total", "timeout"); n != 1 {
		t.Errorf("%v timeout restarts, want 1", n)
	}
}

func TestSupervisorTimeoutKillsChildren(t *testing.T) {
	t.Parallel()
	s := startSupervisor(t, workerConfig(t, "sleep.php"))
	pidfile := filepath.Join(t.TempDir(), "child.pid")
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	in := fmt.Sprintf(`{"fork":true,"sleep":30,"pidfile":%q}`, pidfile)
	res, err := s.Run(ctx, &Job{Kind: Suppliers, Input: []byte(in)})
	if !isCode(err, aggregator.EScriptTimeout) {
		t.Fatalf("err %v, want ErrKilled", err)
	}
	b, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatalf("the handler did not write the child's pid: %v", err)
	}
	child, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || child <= 0 {
		t.Fatalf("bad pidfile %q", b)
	}
	killAtEnd(t, child)
	waitDead(t, res.PID, "the worker")
	waitDead(t, child, "the worker's child `sleep 300`")
	eventually(t, 5*time.Second, "the worker's process group still has live processes", func() bool {
		return len(groupAlive(res.PID)) == 0
	})
}

// TestSupervisorExit: a handler that calls exit() fails its task (the
// worker reports it before it dies) and the worker is replaced.
func TestSupervisorExit(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	log, logs := observedLog()
	cfg := workerConfig(t, "crash.php")
	cfg.Metrics = NewMetrics(reg)
	cfg.Log = log
	s := startSupervisor(t, cfg)
	before := pids(s)[0]
	res, err := run(t, s, Suppliers, `{"crash":true}`)
	if !isCode(err, aggregator.EScriptError) || !strings.Contains(err.Error(), "exit()") {
		t.Fatalf("err %v, want E_SCRIPT_ERROR naming exit()", err)
	}
	if res.PID != before || res.Exception == nil || res.Exception.Class != "Exit" {
		t.Errorf("result pid %d (want %d), exception %+v", res.PID, before, res.Exception)
	}
	waitDead(t, before, "the exited worker")
	waitReplaced(t, s, before, 1, "the exited worker")
	mustRun(t, s, Suppliers, `{"crash":false}`)
	eventually(t, 5*time.Second, "the exit is not counted and logged", func() bool {
		return counter(t, reg, "aggregator_worker_restarts_total", "fatal") == 1 &&
			logs.FilterMessage("handler failed").FilterField(zap.String("exception", "Exit")).Len() == 1 &&
			logs.FilterMessage("worker exited").FilterField(zap.String("reason", "fatal")).Len() == 1
	})
}

// TestSupervisorCrash: a worker killed mid-job (by anyone) fails that job
// with E_SCRIPT_ERROR, once, and is replaced.
func TestSupervisorCrash(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	log, logs := observedLog()
	cfg := workerConfig(t, "sleep.php")
	cfg.Metrics = NewMetrics(reg)
	cfg.Log = log
	s := startSupervisor(t, cfg)
	before := pids(s)[0]
	// Killed once the job is in PHP: killed while the job is on its way,
	// the worker never had it, and it runs again on the next one.
	started := filepath.Join(t.TempDir(), "started")
	go func() {
		eventually(t, 5*time.Second, "the job never started", func() bool {
			_, err := os.Stat(started)
			return err == nil
		})
		_ = syscall.Kill(before, syscall.SIGKILL)
	}()
	_, err := run(t, s, Items, `{"sleep":10,"startfile":`+strconv.Quote(started)+`}`)
	if !isCode(err, aggregator.EScriptError) || !strings.Contains(err.Error(), "died mid-job") {
		t.Fatalf("err %v, want E_SCRIPT_ERROR: died mid-job", err)
	}
	waitFull(t, s, 1)
	if pids(s)[0] == before {
		t.Error("the killed worker is still listed")
	}
	mustRun(t, s, Items, `{}`)
	eventually(t, 5*time.Second, "the crash is not counted and logged", func() bool {
		return counter(t, reg, "aggregator_worker_restarts_total", "crash") == 1 &&
			logs.FilterMessage("worker exited").FilterField(zap.String("reason", "crash")).Len() == 1
	})
}

func TestSupervisorCorruptFrame(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	cfg := workerConfig(t, "corrupt.php")
	cfg.Metrics = NewMetrics(reg)
	s := startSupervisor(t, cfg)
	before := pids(s)[0]
	_, err := run(t, s, Items, `{"corrupt":true}`)
	if !isCode(err, aggregator.EScriptError) || !strings.Contains(err.Error(), "CRC mismatch") {
		t.Fatalf("err %v, want ErrFailed naming the CRC mismatch", err)
	}
	waitDead(t, before, "the worker that sent a corrupt frame")
	waitFull(t, s, 1)
	if res := mustRun(t, s, Items, `{"corrupt":false}`); res.PID == before {
		t.Error("the next job ran on the worker with the corrupt stream")
	}
}

func TestSupervisorException(t *testing.T) {
	t.Parallel()
	log, logs := observedLog()
	cfg := workerConfig(t, "exception.php")
	cfg.Log = log
	s := startSupervisor(t, cfg)
	res1, err := run(t, s, Suppliers, `{"a":1}`)
	if !isCode(err, aggregator.EScriptError) || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("err %v, want ErrFailed with boom", err)
	}
	res2, err := run(t, s, Items, `{"a":2}`)
	if !isCode(err, aggregator.EScriptError) {
		t.Fatalf("second job: err %v, want ErrFailed", err)
	}
	if res1.PID != res2.PID || !slices.Equal(pids(s), []int{res1.PID}) {
		t.Errorf("the worker was replaced: pids %d, %d, pool %v", res1.PID, res2.PID, pids(s))
	}
	failed := logs.FilterMessage("handler failed").All()
	if len(failed) != 2 {
		t.Fatalf("%d 'handler failed' log lines, want 2", len(failed))
	}
	f := failed[0].ContextMap()
	if f["exception"] != "LogicException" || !strings.Contains(fmt.Sprint(f["trace"]), "explode_here") {
		t.Errorf("the log line lacks the exception or its trace: %v", f)
	}
}

func TestSupervisorStartFailure(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct{ handlers, hint string }{
		"syntax error":       {"broken.php", "syntax error"},
		"throws":             {"failboot.php", "failboot"},
		"missing":            {"no-such-file.php", "does not exist"},
		"missing worker.php": {"echo.php", "Could not open input file"},
		"missing program":    {"echo.php", "no such file"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			reg := prometheus.NewRegistry()
			cfg := workerConfig(t, c.handlers)
			switch name {
			case "missing worker.php":
				cfg.Command = []string{"php", "no-such-worker.php"}
			case "missing program":
				cfg.Command = []string{"/nonexistent/php"}
			}
			cfg.Workers = 2
			cfg.Metrics = NewMetrics(reg)
			s := NewSupervisor(cfg)
			t.Cleanup(func() { closeWithin(t, s, 20*time.Second) })

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			_, err := s.Run(ctx, &Job{Kind: Suppliers, Input: []byte(`{}`)})
			took := time.Since(start)
			if !isCode(err, aggregator.EScriptStart) || isCode(err, aggregator.EScriptCancelled) {
				t.Fatalf("err %v, want ErrStart", err)
			}
			if took > 5*time.Second {
				t.Errorf("Run took %v to fail", took)
			}
			if !strings.Contains(err.Error(), c.hint) {
				t.Errorf("err %q does not mention %q", err, c.hint)
			}
			if h := s.Health(); h.Status != aggregator.HealthDown || !strings.Contains(h.Reason, c.hint) {
				t.Errorf("Health: %+v, want down naming %q", h, c.hint)
			}
			time.Sleep(2 * time.Second)
			// A second job fails at once too.
			start = time.Now()
			if _, err := run(t, s, Items, `{}`); !isCode(err, aggregator.EScriptStart) {
				t.Errorf("second job: %v, want ErrStart", err)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("second Run took %v to fail", took)
			}
			failed := counter(t, reg, "aggregator_worker_starts_total", "failed")
			t.Logf("%v failed starts in ~2 s on 2 slots", failed)
			if failed < 2 || failed > 30 {
				t.Errorf("%v failed starts in ~2 s, want a few (backoff)", failed)
			}
			if ok := counter(t, reg, "aggregator_worker_starts_total", "ok"); ok != 0 {
				t.Errorf("%v good starts", ok)
			}
		})
	}
}

func TestSupervisorMaxJobs(t *testing.T) {
	t.Parallel()
	cfg := workerConfig(t, "echo.php")
	cfg.MaxJobs = 3
	s := startSupervisor(t, cfg)
	var got []int
	for i := 0; i < 7; i++ {
		in := fmt.Sprintf(`{"i":%d}`, i)
		res := mustRun(t, s, Items, in)
		if string(res.Output) != in {
			t.Errorf("job %d: answer %s", i, res.Output)
		}
		got = append(got, res.PID)
	}
	for i := range got {
		same := got[i] == got[i/3*3]
		if !same {
			t.Errorf("job %d ran on %d, not on the worker of job %d (%d)", i, got[i], i/3*3, got[i/3*3])
		}
		if i%3 == 0 && i > 0 && got[i] == got[i-1] {
			t.Errorf("job %d ran on the same worker as job %d after 3 jobs", i, i-1)
		}
	}
	t.Logf("pids %v", got)
}

func TestSupervisorMaxMemory(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	cfg := workerConfig(t, "memory.php")
	cfg.MaxMemory = 20 << 20
	cfg.Metrics = NewMetrics(reg)
	s := startSupervisor(t, cfg)
	jobsOf := map[int]int{}
	var order []int
	for i := 0; i < 7; i++ {
		res := mustRun(t, s, Items, `{"mb":8}`)
		if string(res.Output) != `{"items":[]}` {
			t.Errorf("job %d: answer %s", i, res.Output)
		}
		jobsOf[res.PID]++
		order = append(order, res.PID)
	}
	t.Logf("pids %v", order)
	if len(jobsOf) < 2 {
		t.Errorf("one worker ran all 7 jobs of 8 MB with a 20 MB limit")
	}
	for pid, n := range jobsOf {
		if n > 3 {
			t.Errorf("worker %d ran %d jobs of 8 MB: it should have been replaced above 20 MB", pid, n)
		}
	}
	if n := counter(t, reg, "aggregator_worker_restarts_total", "max_memory"); n < 1 {
		t.Errorf("%v max_memory restarts", n)
	}
}

func TestSupervisorReset(t *testing.T) {
	t.Parallel()
	s := startSupervisor(t, workerConfig(t, "reset.php"))
	for i := 0; i < 5; i++ {
		if res := mustRun(t, s, Kind(1+i%2), `{"x":1}`); string(res.Output) != `{"count":1}` {
			t.Errorf("job %d: answer %s, want {\"count\":1}", i, res.Output)
		}
	}
}

// TestSupervisorStrayOutput: what a handler echoes and writes to stderr
// lands in the log tagged with its job's session and task, every time
// (stray stdout travels with the result; stderr written before the result
// is read before the job ends), and in its Result as data.
func TestSupervisorStrayOutput(t *testing.T) {
	t.Parallel()
	log, logs := observedLog()
	cfg := workerConfig(t, "stray.php")
	cfg.Log = log
	s := startSupervisor(t, cfg)
	const jobs = 60
	for i := 1; i <= jobs; i++ {
		in := fmt.Sprintf(`{"i":%d}`, i)
		res, err := s.Run(context.Background(), &Job{Kind: Items, Input: []byte(in), Session: "s1", Task: int64(i), Class: "cls"})
		if err != nil {
			t.Fatal(err)
		}
		if string(res.Output) != in {
			t.Errorf("answer %q, want %q", res.Output, in)
		}
		if !slices.Contains(res.Stderr, "stdout: stray output") || !slices.Contains(res.Stderr, "stray error") {
			t.Errorf("job %d: Result.Stderr %q lacks its output", i, res.Stderr)
		}
	}
	for msg, line := range map[string]string{"php stdout": "stray output", "php stderr": "stray error"} {
		entries := logs.FilterMessage(msg).FilterField(zap.String("line", line)).All()
		tasks := map[int64]bool{}
		for _, e := range entries {
			m := e.ContextMap()
			if m["session"] != "s1" || m["pid"] == nil {
				t.Errorf("%s line without its job's tags: %v", msg, m)
			}
			task, _ := m["task"].(int64)
			tasks[task] = true
		}
		if len(entries) != jobs || len(tasks) != jobs {
			t.Errorf("%d %s lines for %d tasks, want one for each of %d jobs", len(entries), msg, len(tasks), jobs)
		}
	}
}

func TestSupervisorOutputLimit(t *testing.T) {
	t.Parallel()
	cfg := workerConfig(t, "bigoutput.php")
	cfg.OutputLimit = 1 << 20
	s := startSupervisor(t, cfg)
	before := pids(s)[0]
	if _, err := run(t, s, Items, `{"bytes":2097152}`); !isCode(err, aggregator.EScriptError) {
		t.Fatalf("2 MB answer: err %v, want ErrOutputLimit", err)
	}
	waitDead(t, before, "the worker with the big answer")
	waitFull(t, s, 1)
	res := mustRun(t, s, Items, `{"bytes":512000}`)
	if len(res.Output) != 512000 || strings.Trim(string(res.Output), "x") != "" {
		t.Errorf("500 KB answer: %d bytes", len(res.Output))
	}
}

package pool

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/theaspect/aggregator"
	"github.com/theaspect/aggregator/internal/procstat"
	"golang.org/x/sys/unix"

	"github.com/prometheus/client_golang/prometheus"
)

// The supervisor's workers under load and at the edges of their lives:
// reloads and kills while jobs run, health checks, Close, cancelled jobs,
// and workers that die while idle or on a fatal error.

func TestSupervisorReloadUnderLoad(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	cfg := workerConfig(t, "echo.php")
	cfg.Workers = 4
	cfg.Metrics = NewMetrics(reg)
	s := startSupervisor(t, cfg)
	before := pids(s)

	var stop atomic.Bool
	var done atomic.Int64
	var errs errorsOnly
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				in := fmt.Sprintf(`{"g":%d,"i":%d}`, g, i)
				res, err := run(t, s, Suppliers, in)
				switch {
				case err != nil:
					errs.add(fmt.Errorf("g%d job %d: %w", g, i, err))
				case string(res.Output) != in:
					errs.add(fmt.Errorf("g%d job %d: answer %s", g, i, res.Output))
				}
				done.Add(1)
			}
		}()
	}
	for i := 0; i < 3; i++ {
		time.Sleep(300 * time.Millisecond)
		s.Reload()
	}
	time.Sleep(500 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	errs.check(t)
	t.Logf("%d jobs, %v reload restarts", done.Load(), counter(t, reg, "aggregator_worker_restarts_total", "reload"))
	waitFull(t, s, 4)
	for _, pid := range pids(s) {
		if slices.Contains(before, pid) {
			t.Errorf("worker %d from before the reloads is still in the pool", pid)
		}
	}
	for _, pid := range before {
		waitDead(t, pid, "a reloaded worker")
	}
}

func TestSupervisorKillUnderLoad(t *testing.T) {
	t.Parallel()
	cfg := workerConfig(t, "sleep.php")
	cfg.Workers = 4
	s := startSupervisor(t, cfg)

	var stop atomic.Bool
	var started, ok, failed atomic.Int64
	var errs errorsOnly
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				started.Add(1)
				in := fmt.Sprintf(`{"g":%d,"i":%d,"sleep":0.01}`, g, i)
				res, err := run(t, s, Items, in)
				switch {
				case err == nil && sameJSON(res.Output, []byte(in)):
					ok.Add(1)
				case err == nil:
					errs.add(fmt.Errorf("g%d job %d: answer %s", g, i, res.Output))
				case isCode(err, aggregator.EScriptError):
					failed.Add(1)
				default:
					errs.add(fmt.Errorf("g%d job %d: %w", g, i, err))
				}
			}
		}()
	}
	killed := 0
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
		time.Sleep(100 * time.Millisecond)
		if ps := pids(s); len(ps) > 0 {
			if syscall.Kill(ps[rand.IntN(len(ps))], syscall.SIGKILL) == nil {
				killed++
			}
		}
	}
	stop.Store(true)
	wg.Wait()
	errs.check(t)
	t.Logf("%d jobs: %d ok, %d failed; %d workers killed", started.Load(), ok.Load(), failed.Load(), killed)
	if ok.Load()+failed.Load() != started.Load() {
		t.Errorf("%d ok + %d failed != %d started", ok.Load(), failed.Load(), started.Load())
	}
	if ok.Load() == 0 {
		t.Error("no job succeeded")
	}
	waitFull(t, s, 4)
	for _, p := range s.Info() {
		if !procstat.Alive(p.PID) {
			t.Errorf("listed worker %d is dead", p.PID)
		}
	}
	mustRun(t, s, Items, `{"after":true}`)
}

// Killing idle workers while nobody runs jobs must not wedge the pool.
func TestSupervisorKillIdle(t *testing.T) {
	t.Parallel()
	cfg := workerConfig(t, "echo.php")
	cfg.Workers = 2
	s := startSupervisor(t, cfg)
	for round := 0; round < 3; round++ {
		before := pids(s)
		for _, pid := range before {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		for _, pid := range before {
			waitDead(t, pid, "a killed worker")
		}
		eventually(t, 10*time.Second, "the pool did not replace its killed workers", func() bool {
			now := pids(s)
			return len(now) == 2 && !slices.Contains(now, before[0]) && !slices.Contains(now, before[1])
		})
	}
	mustRun(t, s, Items, `{"a":1}`)
	closeWithin(t, s, 10*time.Second)
}

func TestSupervisorHealthCheck(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	cfg := workerConfig(t, "echo.php")
	cfg.IdleCheck = 200 * time.Millisecond
	cfg.Metrics = NewMetrics(reg)
	s := startSupervisor(t, cfg)
	// Healthy idle workers survive their health checks: a pong records the
	// worker's memory before it ran any job.
	eventually(t, 5*time.Second, "no health check answered", func() bool {
		info := s.Info()
		return len(info) == 1 && info[0].Memory > 0 && info[0].Jobs == 0
	})
	before := pids(s)
	if len(before) != 1 {
		t.Fatalf("pool %v", before)
	}
	mustRun(t, s, Items, `{"a":1}`)
	if now := pids(s); !slices.Equal(now, before) {
		t.Fatalf("a healthy worker was replaced: %v -> %v", before, now)
	}
	// A frozen one is replaced.
	if err := syscall.Kill(before[0], syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	killAtEnd(t, before[0])
	waitDead(t, before[0], "the frozen worker")
	waitReplaced(t, s, before[0], 1, "the frozen worker")
	mustRun(t, s, Items, `{"a":2}`)
	if n := counter(t, reg, "aggregator_worker_restarts_total", "health"); n != 1 {
		t.Errorf("%v health restarts, want 1", n)
	}
}

// pipeBytes is how many bytes wait unread in the pipe on fd of process pid.
func pipeBytes(pid, fd int) int {
	f, err := os.Open(fmt.Sprintf("/proc/%d/fd/%d", pid, fd))
	if err != nil {
		return 0
	}
	defer f.Close()
	n, _ := unix.IoctlGetInt(int(f.Fd()), unix.TIOCINQ)
	return n
}

func TestSupervisorCloseHealthCheckWaiting(t *testing.T) {
	t.Parallel()
	cfg := workerConfig(t, "echo.php")
	cfg.IdleCheck = 100 * time.Millisecond
	s := startSupervisor(t, cfg)
	pid := pids(s)[0]
	_ = syscall.Kill(pid, syscall.SIGSTOP) // the health check waits on it
	killAtEnd(t, pid)
	eventually(t, 5*time.Second, "no ping waits in the frozen worker's pipe", func() bool { return pipeBytes(pid, 3) > 0 })
	closeWithin(t, s, 10*time.Second)
	waitDead(t, pid, "the frozen worker after Close")
}

// Not parallel: it counts goroutines.
func TestSupervisorClose(t *testing.T) {
	base := runtime.NumGoroutine()
	cfg := workerConfig(t, "sleep.php")
	cfg.Workers = 3
	cfg.IdleCheck = 50 * time.Millisecond
	s := NewSupervisor(cfg)
	waitFull(t, s, 3)
	ps := pids(s)
	// One job is running when Close comes.
	running := make(chan error, 1)
	go func() {
		_, err := s.Run(context.Background(), &Job{Kind: Items, Input: []byte(`{"sleep":30}`)})
		running <- err
	}()
	eventually(t, 5*time.Second, "the job did not start", func() bool {
		for _, p := range s.Info() {
			if p.State == "busy" {
				return true
			}
		}
		return false
	})
	closeWithin(t, s, 10*time.Second)
	select {
	case err := <-running:
		if !isCode(err, aggregator.EScriptCancelled) {
			t.Errorf("the running job ended with %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the running job did not end with Close")
	}
	for _, pid := range ps {
		if procstat.Alive(pid) {
			t.Errorf("worker %d outlived Close", pid)
		}
	}
	if len(s.Info()) != 0 {
		t.Errorf("Info after Close: %v", s.Info())
	}
	if _, err := s.Run(context.Background(), &Job{Kind: Items, Input: []byte(`{}`)}); !isCode(err, aggregator.EScriptCancelled) {
		t.Errorf("Run after Close: %v, want ErrClosed", err)
	}
	var now int
	for i := 0; i < 100; i++ {
		if now = runtime.NumGoroutine(); now <= base {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if now > base {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines before, %d after Close:\n%s", base, now, buf[:runtime.Stack(buf, true)])
	}
}

// A job whose ctx is cancelled (the session ended, the socket closed) while it
// runs is killed like a timed-out one.
func TestSupervisorCancel(t *testing.T) {
	t.Parallel()
	s := startSupervisor(t, workerConfig(t, "sleep.php"))
	before := pids(s)[0]
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	if _, err := s.Run(ctx, &Job{Kind: Items, Input: []byte(`{"sleep":30}`)}); !isCode(err, aggregator.EScriptTimeout) {
		t.Fatalf("err %v, want ErrKilled", err)
	}
	waitDead(t, before, "the worker of the cancelled job")
	waitFull(t, s, 1)
	mustRun(t, s, Items, `{"sleep":0}`)
}

// A job whose ctx ends while it waits for a worker is not started, and the
// job that holds the worker is not disturbed.
func TestSupervisorNotStarted(t *testing.T) {
	t.Parallel()
	s := startSupervisor(t, workerConfig(t, "sleep.php"))
	first := make(chan error, 1)
	go func() {
		_, err := run(t, s, Items, `{"sleep":1}`)
		first <- err
	}()
	eventually(t, 5*time.Second, "the first job did not start", func() bool {
		info := s.Info()
		return len(info) == 1 && info[0].State == "busy"
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := s.Run(ctx, &Job{Kind: Items, Input: []byte(`{}`)}); !isCode(err, aggregator.EScriptCancelled) {
		t.Errorf("err %v, want ErrNotStarted", err)
	}
	if err := <-first; err != nil {
		t.Errorf("the running job: %v", err)
	}
}

// Workers that die while idle stay in the idle queue until someone takes them
// out; a job finishing meanwhile must still return, and the pool refill.
func TestSupervisorReleaseWithDeadIdle(t *testing.T) {
	t.Parallel()
	cfg := workerConfig(t, "sleep.php")
	cfg.Workers = 2
	s := startSupervisor(t, cfg)
	done := make(chan error, 1)
	go func() {
		_, err := run(t, s, Items, `{"sleep":1.5}`)
		done <- err
	}()
	var busy int
	eventually(t, 5*time.Second, "the job did not start", func() bool {
		for _, p := range s.Info() {
			if p.State == "busy" {
				busy = p.PID
				return true
			}
		}
		return false
	})
	// Kill the idle worker, then its replacement, then the next one.
	for i := 0; i < 3; i++ {
		var idle int
		eventually(t, 10*time.Second, "no idle worker to kill", func() bool {
			for _, p := range s.Info() {
				if p.PID != busy && p.State == "idle" && procstat.Alive(p.PID) {
					idle = p.PID
					return true
				}
			}
			return false
		})
		_ = syscall.Kill(idle, syscall.SIGKILL)
		waitDead(t, idle, "the killed idle worker")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the running job: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the running job never returned")
	}
	waitFull(t, s, 2)
	mustRun(t, s, Items, `{"sleep":0}`)
}

// A fatal error (memory_limit) fails the job with PHP's message, exactly once,
// and the dying worker is replaced.
func TestSupervisorFatalError(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	cfg := workerConfig(t, "memory.php")
	cfg.Command = append(cfg.Command[:len(cfg.Command)-1:len(cfg.Command)-1], "-d", "memory_limit=32M", cfg.Command[len(cfg.Command)-1])
	cfg.Metrics = NewMetrics(reg)
	s := startSupervisor(t, cfg)
	before := pids(s)[0]
	_, err := run(t, s, Items, `{"mb":64}`)
	if !isCode(err, aggregator.EScriptError) || !strings.Contains(err.Error(), "Allowed memory size") {
		t.Fatalf("err %v, want ErrFailed with PHP's memory message", err)
	}
	waitDead(t, before, "the worker after its fatal error")
	waitFull(t, s, 1)
	if res := mustRun(t, s, Items, `{"mb":1}`); res.PID == before {
		t.Error("the next job ran on the dying worker")
	}
	eventually(t, 5*time.Second, "the fatal restart is not counted", func() bool {
		return counter(t, reg, "aggregator_worker_restarts_total", "fatal") == 1
	})
}

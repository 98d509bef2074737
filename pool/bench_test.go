package pool

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/roadrunner-server/goridge/v3/pkg/frame"
	"github.com/roadrunner-server/goridge/v3/pkg/pipe"
)

// benchInput is the job every benchmark sends.
var benchInput = []byte(`{"code":"normal","brand":"x","apikey":"1","analog":1}`)

// spread runs b.N jobs on n goroutines, each calling job until the jobs
// are used up, and reports jobs/s and the CPU time per job of this process
// (the Go side) and of the PHP processes pids lists: on a shared machine
// the time a job takes varies with the neighbours, its CPU much less.
func spread(b *testing.B, n int, pids func() []int, job func(g int) error) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	goCPU, phpCPU := selfCPU(), procsCPU(pids())
	b.ResetTimer()
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if err := job(g); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	goCPU, phpCPU = selfCPU()-goCPU, procsCPU(pids())-phpCPU
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
	b.ReportMetric(goCPU.Seconds()*1e6/float64(b.N), "go-µs/job")
	b.ReportMetric(phpCPU.Seconds()*1e6/float64(b.N), "php-µs/job")
}

// selfCPU is the CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procsCPU is the CPU time (utime+stime of /proc/PID/stat) the processes used.
func procsCPU(pids []int) time.Duration {
	var ticks int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + st
	}
	return time.Duration(ticks) * 10 * time.Millisecond // USER_HZ is 100
}

// workerPIDs lists a supervisor's PHP processes.
func workerPIDs(s *Supervisor) func() []int {
	return func() []int {
		var pids []int
		for _, p := range s.Info() {
			pids = append(pids, p.PID)
		}
		return pids
	}
}

// rawWorker is a PHP process answering protocol 2 (`php worker.php
// echo.php`, or the minimal loop) driven straight through a goridge pipe
// relay, with none of the supervisor's logic.
type rawWorker struct {
	cmd   *exec.Cmd
	relay *pipe.Relay
	id    uint32 // the last job id sent
}

// startRawWorker starts script (a path from the repository's root) with
// the echo handlers.
func startRawWorker(b *testing.B, script string) *rawWorker {
	root := repoRoot(b)
	jobR, jobW, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	resR, resW, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command("php", "-d", "display_errors=stderr", filepath.Join(root, script), fixture(b, "echo.php"))
	cmd.Dir = root
	// PHP's complaints, if any, without the worker's backtrace-ready marker.
	cmd.Stderr = newLineWriter(func(line string) {
		if line != backtraceReady {
			b.Log(line)
		}
	})
	cmd.ExtraFiles = []*os.File{jobR, resW}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	jobR.Close()
	resW.Close()
	w := &rawWorker{cmd: cmd, relay: pipe.NewPipeRelay(resR, jobW)}
	b.Cleanup(func() {
		_ = w.relay.Close() // EOF on fd 3: the worker exits
		_ = cmd.Wait()
	})
	hello := frame.NewFrame()
	if err := w.relay.Receive(hello); err != nil {
		b.Fatalf("handshake: %v", err)
	}
	return w
}

func (w *rawWorker) echo() error {
	w.id++
	if err := w.relay.Send(newFrame(flagRaw, benchInput, typeJob, w.id, uint32(Suppliers))); err != nil {
		return err
	}
	f := frame.NewFrame()
	if err := w.relay.Receive(f); err != nil {
		return err
	}
	if len(f.Payload()) != len(benchInput) {
		return fmt.Errorf("answer %q", f.Payload())
	}
	return nil
}

// BenchmarkRawRelay is the floor of the pool's Go side: goridge relays to
// N worker.php echo workers.
func BenchmarkRawRelay(b *testing.B) { benchRaw(b, "worker.php") }

// BenchmarkMinimalLoop is the floor of worker.php: the same relays to a PHP
// loop that only reads the frame, calls the handler and writes the answer
// (testdata/minimal_loop.php).
func BenchmarkMinimalLoop(b *testing.B) { benchRaw(b, "pool/testdata/minimal_loop.php") }

func benchRaw(b *testing.B, script string) {
	for _, n := range []int{1, 4} {
		b.Run(fmt.Sprintf("workers=%d", n), func(b *testing.B) {
			ws := make([]*rawWorker, n)
			for i := range ws {
				ws[i] = startRawWorker(b, script)
			}
			pids := func() []int {
				var pids []int
				for _, w := range ws {
					pids = append(pids, w.cmd.Process.Pid)
				}
				return pids
			}
			spread(b, n, pids, func(g int) error { return ws[g].echo() })
		})
	}
}

// BenchmarkSupervisor is our pool with the echo handler.
func BenchmarkSupervisor(b *testing.B) {
	for _, n := range []int{1, 4} {
		b.Run(fmt.Sprintf("workers=%d", n), func(b *testing.B) {
			cfg := workerConfig(b, "echo.php")
			cfg.Workers = n
			s := startSupervisor(b, cfg)
			ctx := context.Background()
			spread(b, n, workerPIDs(s), func(int) error {
				res, err := s.Run(ctx, &Job{Kind: Suppliers, Input: benchInput})
				if err == nil && len(res.Output) != len(benchInput) {
					err = fmt.Errorf("answer %q", res.Output)
				}
				return err
			})
		})
	}
}

// BenchmarkExec is exec mode: a PHP process per job.
func BenchmarkExec(b *testing.B) {
	cfg := execConfig(b)
	cfg.Processes = 4
	cfg.Suppliers = []string{"php", "-d", "display_errors=stderr", fixture(b, "exec_echo.php")}
	e := newExec(b, cfg)
	ctx := context.Background()
	spread(b, 4, func() []int { return nil }, func(int) error {
		res, err := e.Run(ctx, &Job{Kind: Suppliers, Input: benchInput})
		if err == nil && len(res.Output) != len(benchInput)+1 { // exec adds a newline to stdin
			err = fmt.Errorf("answer %q", res.Output)
		}
		return err
	})
}

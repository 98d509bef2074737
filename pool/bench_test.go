package pool

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/roadrunner-server/goridge/v3/pkg/frame"
	"github.com/roadrunner-server/goridge/v3/pkg/pipe"
)

// benchInput is the job every benchmark sends.
var benchInput = []byte(`{"code":"normal","brand":"x","apikey":"1","analog":1}`)

// spread runs b.N jobs on n goroutines, each calling job until the jobs
// are used up, and reports jobs/s.
func spread(b *testing.B, n int, job func(g int) error) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, n)
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
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}

// rawWorker is a `php worker.php echo.php` process driven straight through a
// goridge pipe relay, with none of the supervisor's logic.
type rawWorker struct {
	cmd   *exec.Cmd
	relay *pipe.Relay
}

func startRawWorker(b *testing.B) *rawWorker {
	root := repoRoot(b)
	jobR, jobW, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	resR, resW, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command("php", "-d", "display_errors=stderr", filepath.Join(root, "worker.php"), fixture(b, "echo.php"))
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
	if err := w.relay.Send(newFrame(flagRaw, benchInput, uint32(Suppliers))); err != nil {
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

// BenchmarkRawRelay is the floor: goridge relays to N PHP echo workers.
func BenchmarkRawRelay(b *testing.B) {
	for _, n := range []int{1, 4} {
		b.Run(fmt.Sprintf("workers=%d", n), func(b *testing.B) {
			ws := make([]*rawWorker, n)
			for i := range ws {
				ws[i] = startRawWorker(b)
			}
			spread(b, n, func(g int) error { return ws[g].echo() })
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
			spread(b, n, func(int) error {
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
	spread(b, 4, func(int) error {
		res, err := e.Run(ctx, &Job{Kind: Suppliers, Input: benchInput})
		if err == nil && len(res.Output) != len(benchInput)+1 { // exec adds a newline to stdin
			err = fmt.Errorf("answer %q", res.Output)
		}
		return err
	})
}

package pool

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/roadrunner-server/goridge/v3/pkg/frame"
	"github.com/roadrunner-server/goridge/v3/pkg/pipe"
	"github.com/theaspect/aggregator/internal/benchjob"
)

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
	if err := w.relay.Send(newFrame(flagRaw, benchjob.Input, typeJob, w.id, uint32(Suppliers))); err != nil {
		return err
	}
	f := frame.NewFrame()
	if err := w.relay.Receive(f); err != nil {
		return err
	}
	if len(f.Payload()) != len(benchjob.Input) {
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
			benchjob.Spread(b, n, pids, func(g int) error { return ws[g].echo() })
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
			benchjob.Spread(b, n, workerPIDs(s), func(int) error {
				res, err := s.Run(ctx, &Job{Kind: Suppliers, Input: benchjob.Input})
				if err == nil && len(res.Output) != len(benchjob.Input) {
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
	benchjob.Spread(b, 4, func() []int { return nil }, func(int) error {
		res, err := e.Run(ctx, &Job{Kind: Suppliers, Input: benchjob.Input})
		if err == nil && len(res.Output) != len(benchjob.Input)+1 { // exec adds a newline to stdin
			err = fmt.Errorf("answer %q", res.Output)
		}
		return err
	})
}

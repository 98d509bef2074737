// Package rrpeer measures RoadRunner's worker pool (github.com/roadrunner-server/pool)
// on the job pool/bench_test.go gives ours, as a peer. It is a module of its
// own so the aggregator's binary does not depend on RoadRunner.
//
//	cd bench/rrpeer && go test -run '^$' -bench .
package rrpeer

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
	"github.com/roadrunner-server/pool/ipc/pipe"
	"github.com/roadrunner-server/pool/payload"
	"github.com/roadrunner-server/pool/pool"
	"github.com/roadrunner-server/pool/pool/static_pool"
	"go.uber.org/zap"
)

// benchInput is pool/bench_test.go's job.
var benchInput = []byte(`{"code":"normal","brand":"x","apikey":"1","analog":1}`)

// BenchmarkRoadRunner is RoadRunner's static pool of N PHP processes
// answering the echo handler of pool/testdata/echo.php.
func BenchmarkRoadRunner(b *testing.B) {
	handlers, err := filepath.Abs("../../pool/testdata/echo.php")
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{1, 4} {
		b.Run(fmt.Sprintf("workers=%d", n), func(b *testing.B) {
			ctx := context.Background()
			p, err := static_pool.NewPool(ctx,
				func([]string) *exec.Cmd {
					return exec.Command("php", "-d", "display_errors=stderr", "worker.php", handlers)
				},
				pipe.NewPipeFactory(zap.NewNop()),
				&pool.Config{NumWorkers: uint64(n), AllocateTimeout: time.Minute, DestroyTimeout: time.Minute},
				zap.NewNop())
			if err != nil {
				b.Fatal(err)
			}
			defer p.Destroy(ctx)
			pids := func() []int {
				var out []int
				for _, w := range p.Workers() {
					out = append(out, int(w.Pid()))
				}
				return out
			}
			spread(b, n, pids, func() error {
				ch, err := p.Exec(ctx, &payload.Payload{Body: benchInput, Codec: frame.CodecRaw}, make(chan struct{}))
				if err != nil {
					return err
				}
				r := <-ch
				if r.Error() != nil {
					return r.Error()
				}
				if len(r.Body()) != len(benchInput) {
					return fmt.Errorf("answer %q", r.Body())
				}
				return nil
			})
		})
	}
}

// spread is pool/bench_test.go's: b.N jobs on n goroutines; jobs/s and
// CPU per job of this process and of the PHP processes.
func spread(b *testing.B, n int, pids func() []int, job func() error) {
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
				if err := job(); err != nil {
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

func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

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
	return time.Duration(ticks) * 10 * time.Millisecond
}

// Package rrpeer measures RoadRunner's worker pool (github.com/roadrunner-server/pool)
// on the job pool/bench_test.go gives ours, as a peer. It is a module of its
// own so the aggregator's binary does not depend on RoadRunner.
//
//	cd bench/rrpeer && go test -run '^$' -bench .
package rrpeer

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/roadrunner-server/goridge/v3/pkg/frame"
	"github.com/roadrunner-server/pool/ipc/pipe"
	"github.com/roadrunner-server/pool/payload"
	"github.com/roadrunner-server/pool/pool"
	"github.com/roadrunner-server/pool/pool/static_pool"
	"github.com/theaspect/aggregator/internal/benchjob"
	"go.uber.org/zap"
)

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
			benchjob.Spread(b, n, pids, func(int) error {
				ch, err := p.Exec(ctx, &payload.Payload{Body: benchjob.Input, Codec: frame.CodecRaw}, make(chan struct{}))
				if err != nil {
					return err
				}
				r := <-ch
				if r.Error() != nil {
					return r.Error()
				}
				if len(r.Body()) != len(benchjob.Input) {
					return fmt.Errorf("answer %q", r.Body())
				}
				return nil
			})
		})
	}
}

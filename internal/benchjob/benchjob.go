// Package benchjob is the job the PHP-side benchmarks send (ours in
// pool/bench_test.go, RoadRunner's in bench/rrpeer) and how they run it,
// so that both measure the same thing the same way.
package benchjob

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/theaspect/aggregator/internal/procstat"
)

// Input is the job every benchmark sends; the echo handler answers it.
var Input = []byte(`{"code":"normal","brand":"x","apikey":"1","analog":1}`)

// Spread runs b.N jobs on n goroutines, each calling job (with its
// goroutine's number) until the jobs are used up, and reports jobs/s and
// the CPU time per job of this process (the Go side) and of the PHP
// processes pids lists.
func Spread(b *testing.B, n int, pids func() []int, job func(g int) error) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	goCPU, phpCPU := procstat.Self(), procstat.CPU(pids())
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
	goCPU, phpCPU = procstat.Self()-goCPU, procstat.CPU(pids())-phpCPU
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
	b.ReportMetric(goCPU.Seconds()*1e6/float64(b.N), "go-µs/job")
	b.ReportMetric(phpCPU.Seconds()*1e6/float64(b.N), "php-µs/job")
}

package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// latencyBrowsers is the concurrency of the real-latency run (issue 15).
const latencyBrowsers = 200

// supplierAnswer is what the fake supplier answers: 3 parts.
const supplierAnswer = `{"parts":[` +
	`{"number":"3310-1","maker":"CTR","title":"Ball joint","price":11.99,"stock":5},` +
	`{"number":"3310-2","maker":"CTR","title":"Ball joint, left","price":12.99,"stock":10},` +
	`{"number":"3310-3","maker":"CTR","title":"Ball joint, right","price":13.99,"stock":15}]}`

// supplier is a fake supplier API in this process: each call waits (delay)
// before its answer; it counts the calls in flight and their peak.
type supplier struct {
	url      string
	delay    func() time.Duration
	inFlight atomic.Int64
	peak     atomic.Int64
	calls    atomic.Int64
	// barrier: when set, every call waits until this many are in flight at
	// once (or release closes), then all answer.
	barrier  int64
	release  chan struct{}
	once     sync.Once
	peakedAt atomic.Int64 // unix nanos when the barrier was reached
	firstAt  atomic.Int64 // unix nanos of the first call
	srv      *http.Server
}

func startSupplier(delay func() time.Duration) *supplier {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail("fake supplier: %v", err)
	}
	s := &supplier{url: "http://" + ln.Addr().String(), delay: delay, release: make(chan struct{})}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: time.Minute}
	go func() { _ = s.srv.Serve(ln) }()
	return s
}

func (s *supplier) serve(w http.ResponseWriter, r *http.Request) {
	s.calls.Add(1)
	s.firstAt.CompareAndSwap(0, time.Now().UnixNano())
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for p := s.peak.Load(); n > p && !s.peak.CompareAndSwap(p, n); p = s.peak.Load() {
	}
	if s.barrier > 0 {
		if n >= s.barrier {
			s.once.Do(func() { s.peakedAt.Store(time.Now().UnixNano()); close(s.release) })
		}
		select {
		case <-s.release:
		case <-r.Context().Done():
			return
		}
	}
	if d := s.delay(); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(supplierAnswer))
}

func (s *supplier) close() {
	s.once.Do(func() { close(s.release) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}

// sampler records the peak of a server's RSS and its PHP processes' PSS
// while a load runs, the peak of the two together (memory in all), and
// the most PSS one PHP process had on average in a sample.
type sampler struct {
	stop              chan struct{}
	done              chan struct{}
	rss, phpPeak, all int64
	allRSS, allPHP    int64 // the two at the sample where all peaked
	perProcess        int64
}

func sample(pid int, every time.Duration) *sampler {
	s := &sampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			r := rss(pid)
			php, n := phpPSS(pid)
			s.rss, s.phpPeak = max(s.rss, r), max(s.phpPeak, php)
			if r+php > s.all {
				s.all, s.allRSS, s.allPHP = r+php, r, php
			}
			if n > 0 {
				s.perProcess = max(s.perProcess, php/int64(n))
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *sampler) end() *sampler {
	close(s.stop)
	<-s.done
	return s
}

// realLatency: suppliers answering in uniform 0..1000 ms, 200 browsers
// searching `normal`-shaped (3 suppliers × 3 items), through translators
// that call the supplier blocking (the worker waits) or through fetch().
func realLatency() {
	sup := startSupplier(func() time.Duration { return time.Duration(rand.Int64N(int64(time.Second))) })
	defer sup.close()
	// 3 calls of uniform 0..1 s in parallel: the session lasts their max,
	// whose mean is 3/4 s.
	bound := latencyBrowsers / 0.75
	fmt.Printf("### Suppliers with real latency (uniform 0..1000 ms, %d browsers, `normal`-shaped: 3 suppliers × 3 items, %s per run)\n\n",
		latencyBrowsers, *latencyD)
	fmt.Println("| translators | PHP workers × jobs each | sessions/s | of the latency bound | first item p50 / p99 ms | session p50 / p99 ms | PHP memory (PSS) | server RSS | failed |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	for _, run := range []struct {
		call        string
		executor    int
		concurrency int
		maxJobs     string
	}{{"sync", 20, 1, "auto"}, {"sync", 400, 1, "auto"}, {"fetch", 4, 256, "auto"}, {"fetch", 4, 256, "1000"}} {
		s := start([]string{"BENCH_SUPPLIER=" + sup.url, "BENCH_CALL=" + run.call},
			"-Daggregator.worker.handlers=cmd/aggbench/testdata/latency.php",
			fmt.Sprintf("-Daggregator.pool.executor=%d", run.executor),
			fmt.Sprintf("-Daggregator.pool.concurrency=%d", run.concurrency),
			"-Daggregator.pool.max-jobs="+run.maxJobs)
		smp := sample(s.pid(), time.Second)
		out, took := load(s.ws, "normal", latencyBrowsers, *latencyD)
		smp.end()
		sum := summarize(out, false)
		rate := float64(sum.ok) / took.Seconds()
		name := map[string]string{"sync": "blocking (`file_get_contents`)", "fetch": "`\\Aggregator\\fetch()`"}[run.call]
		if run.maxJobs != "auto" {
			name += ", max-jobs=" + run.maxJobs
		}
		fmt.Printf("| %s | %d × %d | %s | %.0f%% | %s | %s | %s | %d of %d |\n", name, run.executor, run.concurrency,
			commas(rate), 100*rate/bound, sum.latencies(), mb(smp.phpPeak), mb(smp.rss), sum.failed, len(out))
		s.stop()
	}
	fmt.Printf("\nLatency bound (a server of zero cost): %d browsers ÷ 0.75 s mean session = **%.0f sessions/s**. "+
		"A session fails when it does not close 1000 with all its items (a task cancelled after waiting 5 s for a worker, say). "+
		"max-jobs is aggregator.pool.max-jobs (default auto: 10000 × concurrency); with a fixed 1000 a worker running 256 jobs "+
		"at once reaches it in seconds, and while it finishes the jobs it has, its replacement already runs, so the PHP processes overlap. "+
		"PHP memory is the sum of the workers' PSS (/proc/PID/smaps_rollup), server RSS the Go process's, both at their peak in the run.\n\n",
		latencyBrowsers, bound)
}

// inFlight: 10,000 supplier calls in flight at once through fetch(). The
// fake supplier holds every call until 10,000 are in flight (or a minute
// passed), then answers them all.
func inFlight() {
	const browsers, perSearch = 100, 100
	const target = browsers * perSearch
	sup := startSupplier(func() time.Duration { return 0 })
	sup.barrier = target
	defer sup.close()
	s := start([]string{"BENCH_SUPPLIER=" + sup.url, "BENCH_CALL=fetch"},
		"-Daggregator.worker.handlers=cmd/aggbench/testdata/latency.php",
		"-Daggregator.pool.executor=4", "-Daggregator.pool.concurrency=2500",
		"-Daggregator.fetch.max-conns-per-host=12000",
		"-Daggregator.timeout.script=60", "-Daggregator.timeout.session=90")
	defer s.stop()
	go func() { // the barrier gives up after a minute
		select {
		case <-sup.release:
		case <-time.After(time.Minute):
			sup.once.Do(func() { close(sup.release) })
		}
	}()
	smp := sample(s.pid(), 500*time.Millisecond)
	var wg sync.WaitGroup
	outs := make([]outcome, browsers)
	t0 := time.Now()
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i] = session(s.ws, fmt.Sprintf("calls-%d", perSearch))
		}()
	}
	<-sup.release
	reached := time.Since(t0)
	time.Sleep(time.Second) // the answers flow back
	wg.Wait()
	smp.end()
	ok, items := 0, 0
	for _, o := range outs {
		if o.ok() && o.msgs == perSearch*5 { // PENDING, 3 SENDING, SUCCESS per supplier
			ok++
		}
		items += o.msgs
	}
	peak := sup.peak.Load()
	fmt.Printf("### %s supplier calls in flight at once (fetch(), 4 PHP workers × 2,500 jobs each)\n\n", commas(target))
	fmt.Println("| browsers × suppliers each | peak calls in flight (at the supplier) | reached after | server RSS (peak) | PHP memory (PSS, peak) | searches complete |")
	fmt.Println("|---|---|---|---|---|---|")
	fmt.Printf("| %d × %d | **%s** | %.1f s | %s | %s | %d of %d |\n\n", browsers, perSearch, commas(float64(peak)),
		reached.Seconds(), mb(smp.rss), mb(smp.phpPeak), ok, browsers)
}

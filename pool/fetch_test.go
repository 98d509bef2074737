package pool

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/theaspect/aggregator"
	"github.com/theaspect/aggregator/fetch"
)

// \Aggregator\fetch() in worker mode, end to end: real PHP workers running
// testdata/fetch.php, the real fetch client, a real HTTP server as the
// supplier.

// supplier is a fake supplier API for the tests.
type supplier struct {
	*httptest.Server
	inFlight, peak atomic.Int64
	cancelled      atomic.Int64  // requests whose caller went away before the answer
	release        chan struct{} // closed to let /hold requests answer
}

func startSupplier(t *testing.T) *supplier {
	s := &supplier{release: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Add("X-Repeated", "a")
		w.Header().Add("X-Repeated", "b")
		_ = json.NewEncoder(w).Encode(map[string]string{"method": r.Method, "body": string(body),
			"key": r.Header.Get("X-Api-Key"), "path": r.URL.Path})
	})
	mux.HandleFunc("/status/", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/status/"))
		w.WriteHeader(code)
		fmt.Fprintf(w, "status %d", code)
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ok", http.StatusFound)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("bytes"))
		_, _ = w.Write([]byte(strings.Repeat("x", n)))
	})
	wait := func(w http.ResponseWriter, r *http.Request, done <-chan struct{}) {
		n := s.inFlight.Add(1)
		defer s.inFlight.Add(-1)
		for p := s.peak.Load(); n > p && !s.peak.CompareAndSwap(p, n); p = s.peak.Load() {
		}
		select {
		case <-done:
			_, _ = w.Write([]byte("late"))
		case <-r.Context().Done():
			s.cancelled.Add(1)
		}
	}
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		done := make(chan struct{})
		t := time.AfterFunc(time.Duration(ms)*time.Millisecond, func() { close(done) })
		defer t.Stop()
		wait(w, r, done)
	})
	mux.HandleFunc("/hold", func(w http.ResponseWriter, r *http.Request) { wait(w, r, s.release) })
	s.Server = httptest.NewServer(mux)
	t.Cleanup(func() {
		s.Server.CloseClientConnections()
		s.Server.Close()
	})
	return s
}

// fetchConfig is a worker pool on testdata/fetch.php with the real fetch client.
func fetchConfig(t *testing.T, workers, concurrency int) WorkerConfig {
	cfg := workerConfig(t, "fetch.php")
	cfg.Workers, cfg.Concurrency = workers, concurrency
	cfg.OutputLimit = 1 << 20
	cfg.Fetcher = fetch.New(fetch.Config{MaxBody: cfg.OutputLimit})
	return cfg
}

// fetchJob runs an items job of fetch.php with input in and decodes its answer.
func fetchJob(t *testing.T, r Runner, d time.Duration, in any) (map[string]any, Result, error) {
	t.Helper()
	b, _ := json.Marshal(in)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	res, err := r.Run(ctx, &Job{Kind: Items, Input: b, Session: "s", Task: 1, Class: "supplier"})
	var out map[string]any
	if err == nil {
		if jerr := json.Unmarshal(res.Output, &out); jerr != nil {
			t.Fatalf("answer %s: %v", res.Output, jerr)
		}
	}
	return out, res, err
}

// TestFetchAnswers: any answer is a Response — 2xx, 4xx, 5xx, after
// redirects — with the method, headers and body the translator gave.
func TestFetchAnswers(t *testing.T) {
	t.Parallel()
	sup := startSupplier(t)
	s := startSupervisor(t, fetchConfig(t, 1, 4))
	out, _, err := fetchJob(t, s, 10*time.Second, map[string]any{"url": sup.URL + "/ok",
		"options": map[string]any{"method": "POST", "headers": map[string]string{"X-Api-Key": "k1"}, "body": "q=3310"}})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	_ = json.Unmarshal([]byte(out["body"].(string)), &got)
	if out["status"] != 200.0 || got["method"] != "POST" || got["body"] != "q=3310" || got["key"] != "k1" {
		t.Errorf("POST /ok: %v (server saw %v)", out, got)
	}
	headers, _ := out["headers"].(map[string]any)
	if headers["content-type"] != "application/json" || headers["x-repeated"] != "a, b" {
		t.Errorf("headers %v: want lower-case names, repeated ones joined", headers)
	}
	for path, want := range map[string]float64{"/status/404": 404, "/status/503": 503} {
		out, _, err := fetchJob(t, s, 10*time.Second, map[string]any{"url": sup.URL + path})
		if err != nil || out["status"] != want || out["body"] != fmt.Sprintf("status %d", int(want)) {
			t.Errorf("%s: %v %v, want status %v as an answer", path, out, err, want)
		}
	}
	out, _, err = fetchJob(t, s, 10*time.Second, map[string]any{"url": sup.URL + "/redirect"})
	if err != nil || out["status"] != 200.0 || !strings.Contains(out["body"].(string), `"path":"/ok"`) {
		t.Errorf("/redirect: %v %v, want the answer of /ok", out, err)
	}
}

// TestFetchNoAnswer: every way of getting no answer is a FetchException
// naming the URL and the cause; uncaught it fails the task E_SCRIPT_ERROR.
func TestFetchNoAnswer(t *testing.T) {
	t.Parallel()
	sup := startSupplier(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := "http://" + ln.Addr().String() + "/"
	ln.Close()
	cfg := fetchConfig(t, 1, 4)
	cfg.Fetcher = fetch.New(fetch.Config{MaxBody: 1000})
	s := startSupervisor(t, cfg)
	out, _, err := fetchJob(t, s, 20*time.Second, map[string]any{"all": map[string]any{
		"refused":   closed,
		"dns":       "http://no-such-host.invalid/",
		"timeout":   []any{sup.URL + "/slow?ms=3000", map[string]any{"timeout": 0.3}},
		"too_large": sup.URL + "/big?bytes=5000",
		"scheme":    "ftp://example.com/",
		"fine":      sup.URL + "/big?bytes=1000",
	}})
	if err != nil {
		t.Fatal(err)
	}
	for cause, url := range map[string]string{"refused": closed, "dns": "http://no-such-host.invalid/",
		"timeout": sup.URL + "/slow?ms=3000", "too_large": sup.URL + "/big?bytes=5000", "scheme": "ftp://example.com/"} {
		got, _ := out[cause].(map[string]any)
		if got["cause"] != cause || !strings.Contains(fmt.Sprint(got["message"]), url) {
			t.Errorf("%s: %v, want cause %q and a message naming %s", cause, got, cause, url)
		}
	}
	if fine, _ := out["fine"].(map[string]any); fine["status"] != 200.0 {
		t.Errorf("a body at the limit: %v", out["fine"])
	}
	_, res, err := fetchJob(t, s, 10*time.Second, map[string]any{"url": closed})
	if !isCode(err, aggregator.EScriptError) || res.Exception == nil || res.Exception.Class != "Aggregator\\FetchException" ||
		!strings.HasSuffix(res.Exception.File, "testdata/fetch.php") {
		t.Errorf("uncaught: %v %+v, want E_SCRIPT_ERROR with the FetchException at the handler's call", err, res.Exception)
	}
}

// TestFetchJobTimeout: a job whose time runs out while it waits for a
// supplier ends E_SCRIPT_TIMEOUT at its deadline, naming the URL; the call
// is cancelled, the job's finally runs in PHP, the worker lives on.
func TestFetchJobTimeout(t *testing.T) {
	t.Parallel()
	sup := startSupplier(t)
	log, logs := observedLog()
	cfg := fetchConfig(t, 1, 4)
	cfg.Log = log
	s := startSupervisor(t, cfg)
	pid := pids(s)[0]
	marker := filepath.Join(t.TempDir(), "finally")
	start := time.Now()
	_, _, err := fetchJob(t, s, 700*time.Millisecond, map[string]any{"url": sup.URL + "/hold", "finally": marker})
	took := time.Since(start)
	if !isCode(err, aggregator.EScriptTimeout) || !strings.Contains(err.Error(), "waiting for GET "+sup.URL+"/hold") {
		t.Fatalf("err %v, want E_SCRIPT_TIMEOUT naming the call", err)
	}
	if took > 5*time.Second {
		t.Errorf("it ended %v after it started, its deadline was 0.7 s", took)
	}
	eventually(t, 5*time.Second, "the job's finally did not run in PHP", func() bool {
		b, _ := os.ReadFile(marker)
		return string(b) == "ran"
	})
	eventually(t, 5*time.Second, "the supplier call was not cancelled", func() bool { return sup.cancelled.Load() == 1 })
	eventually(t, 5*time.Second, "the cancelled job did not leave the worker", func() bool {
		info := s.Info()
		return len(info) == 1 && len(info[0].Running) == 0
	})
	if _, _, err := fetchJob(t, s, 10*time.Second, map[string]any{"url": sup.URL + "/ok"}); err != nil {
		t.Fatal(err)
	}
	if now := pids(s); len(now) != 1 || now[0] != pid {
		t.Errorf("workers %v, want %d still serving", now, pid)
	}
	if n := logs.FilterMessage(whyTimeout).Len(); n != 0 {
		t.Errorf("%d timeout backtraces: a job waiting in fetch() is cancelled, not killed", n)
	}
}

// TestFetchManyInFlight: one worker holds many jobs waiting for suppliers
// at once; least-busy scheduling spreads jobs over workers.
func TestFetchManyInFlight(t *testing.T) {
	t.Parallel()
	sup := startSupplier(t)
	s := startSupervisor(t, fetchConfig(t, 2, 64))
	const n = 100
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, _, err := fetchJob(t, s, 20*time.Second, map[string]any{"url": sup.URL + "/hold"}); err != nil || out["body"] != "late" {
				failed.Add(1)
				t.Errorf("job %d: %v %v", i, out, err)
			}
		}()
	}
	eventually(t, 10*time.Second, "the jobs are not all waiting at the supplier at once", func() bool { return sup.inFlight.Load() == n })
	per := map[int]int{}
	for _, p := range s.Info() {
		per[p.PID] = len(p.Running)
		for _, j := range p.Running {
			if len(j.Calls) != 1 || j.Calls[0].Host != strings.TrimPrefix(sup.URL, "http://") {
				t.Errorf("/workers job %+v: want its one call to the supplier", j)
			}
		}
	}
	for pid, jobs := range per {
		if jobs != n/2 {
			t.Errorf("worker %d runs %d jobs, want %d each (least busy first): %v", pid, jobs, n/2, per)
		}
	}
	close(sup.release)
	wg.Wait()
	if failed.Load() > 0 {
		t.Errorf("%d of %d failed", failed.Load(), n)
	}
}

// TestFetchWorkerKilledInFlight: a worker SIGKILLed with many jobs in
// flight: each job ends exactly once (E_SCRIPT_ERROR), the pool refills.
func TestFetchWorkerKilledInFlight(t *testing.T) {
	t.Parallel()
	sup := startSupplier(t)
	reg := prometheus.NewRegistry()
	cfg := fetchConfig(t, 1, 32)
	cfg.Metrics = NewMetrics(reg)
	s := startSupervisor(t, cfg)
	pid := pids(s)[0]
	const n = 20
	ends := make(chan error, 2*n)
	for i := 0; i < n; i++ {
		go func() {
			_, _, err := fetchJob(t, s, 20*time.Second, map[string]any{"url": sup.URL + "/hold"})
			ends <- err
		}()
	}
	eventually(t, 10*time.Second, "the jobs are not all waiting", func() bool { return sup.inFlight.Load() == n })
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < n; i++ {
		if err := <-ends; !isCode(err, aggregator.EScriptError) || !strings.Contains(err.Error(), "died mid-job") {
			t.Errorf("job %d: %v, want E_SCRIPT_ERROR: died mid-job", i, err)
		}
	}
	select {
	case err := <-ends:
		t.Errorf("a job ended twice: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	waitFull(t, s, 1)
	if counter(t, reg, "aggregator_worker_restarts_total", "crash") != 1 {
		t.Error("the crash was not counted")
	}
	close(sup.release)
	if _, _, err := fetchJob(t, s, 10*time.Second, map[string]any{"url": sup.URL + "/ok"}); err != nil {
		t.Errorf("after the refill: %v", err)
	}
}

// TestFetchStuckJob: a job stuck in PHP code past its time, beside jobs
// waiting in fetch(): the stuck job ends E_SCRIPT_TIMEOUT with a backtrace
// and its worker is killed; the waiting jobs run again on another worker
// (their time allows) and succeed.
func TestFetchStuckJob(t *testing.T) {
	t.Parallel()
	sup := startSupplier(t)
	log, logs := observedLog()
	reg := prometheus.NewRegistry()
	cfg := fetchConfig(t, 2, 8)
	cfg.Log, cfg.Metrics = log, NewMetrics(reg)
	s := startSupervisor(t, cfg)
	// Both workers get jobs; the stuck one lands on whichever is less busy.
	var wg sync.WaitGroup
	var waitErrs errorsOnly
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, _, err := fetchJob(t, s, 20*time.Second, map[string]any{"url": sup.URL + "/slow?ms=2500"}); err != nil || out["body"] != "late" {
				waitErrs.add(fmt.Errorf("waiting job %d: %v %v", i, out, err))
			}
		}()
	}
	eventually(t, 10*time.Second, "the waiting jobs are not at the supplier", func() bool { return sup.inFlight.Load() == 4 })
	_, res, err := fetchJob(t, s, 1500*time.Millisecond, map[string]any{"url": sup.URL + "/ok", "spin": 30})
	if !isCode(err, aggregator.EScriptTimeout) || !strings.Contains(err.Error(), "running PHP code") {
		t.Fatalf("stuck job: %v, want E_SCRIPT_TIMEOUT while running PHP code", err)
	}
	wg.Wait()
	waitErrs.check(t)
	waitDead(t, res.PID, "the stuck worker")
	if bt := logs.FilterMessage(whyTimeout).All(); len(bt) != 1 || !strings.Contains(fmt.Sprint(bt[0].ContextMap()["backtrace"]), "fetch.php") {
		t.Errorf("timeout backtraces %v: want one, of the stuck job", bt)
	}
	if counter(t, reg, "aggregator_worker_restarts_total", "timeout") != 1 {
		t.Error("the kill was not counted as a timeout")
	}
}

// TestFetchReloadInFlight: a reload while jobs wait for suppliers loses
// none: the old worker takes no new jobs, finishes its own, then exits.
func TestFetchReloadInFlight(t *testing.T) {
	t.Parallel()
	sup := startSupplier(t)
	s := startSupervisor(t, fetchConfig(t, 1, 16))
	old := pids(s)[0]
	const n = 8
	ends := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			out, _, err := fetchJob(t, s, 20*time.Second, map[string]any{"url": sup.URL + "/hold"})
			if err == nil && out["body"] != "late" {
				err = fmt.Errorf("answer %v", out)
			}
			ends <- err
		}()
	}
	eventually(t, 10*time.Second, "the jobs are not waiting", func() bool { return sup.inFlight.Load() == n })
	s.Reload()
	eventually(t, 10*time.Second, "no new worker beside the draining one", func() bool { return len(pids(s)) == 2 })
	if _, _, err := fetchJob(t, s, 10*time.Second, map[string]any{"url": sup.URL + "/ok"}); err != nil {
		t.Fatalf("a job during the reload: %v", err)
	}
	close(sup.release)
	for i := 0; i < n; i++ {
		if err := <-ends; err != nil {
			t.Errorf("job %d: %v", i, err)
		}
	}
	waitDead(t, old, "the old worker")
	waitFull(t, s, 1)
}

package pool

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/theaspect/aggregator"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// Backtraces (slowlog, backtrace before a timeout kill) in both modes, with
// the handlers of testdata/slow.php (worker) and the script
// testdata/slow_exec.php (exec), which wait in wait_for_supplier().

// btMode makes a runner of one mode for the backtrace tests.
type btMode struct {
	name string
	// runner starts a runner whose jobs run the fixture of kind "slow" or
	// "blocked", logging to log.
	runner func(t *testing.T, fixture string, log *zap.Logger, slowlog time.Duration) Runner
	file   string // the file the slow job's backtrace names
}

var btModes = []btMode{
	{"worker", func(t *testing.T, fixture string, log *zap.Logger, slowlog time.Duration) Runner {
		cfg := workerConfig(t, fixture+".php")
		cfg.Log, cfg.Slowlog = log, slowlog
		return startSupervisor(t, cfg)
	}, "slow.php"},
	{"exec", func(t *testing.T, fixture string, log *zap.Logger, slowlog time.Duration) Runner {
		cfg := execBacktraceConfig(t, fixture+"_exec.php")
		cfg.Log, cfg.Slowlog = log, slowlog
		return newExec(t, cfg)
	}, "slow_exec.php"},
}

// execBacktraceConfig runs testdata/<script> for both kinds, with the prepend file.
func execBacktraceConfig(t testing.TB, script string) ExecConfig {
	root := repoRoot(t)
	words := []string{"php", "-d", "display_errors=stderr", fixture(t, script)}
	return ExecConfig{
		Suppliers: words, Items: words, Dir: root, Env: os.Environ(), Processes: 2,
		Prepend: filepath.Join(root, "src", "prepend.php"),
	}
}

// slowJob is a job of the test session "sess-7", task 42, supplier "acme-3"
// that waits seconds in wait_for_supplier().
func slowJob(seconds float64) *Job {
	return &Job{Kind: Items, Input: []byte(fmt.Sprintf(`{"seconds":%g}`, seconds)),
		Session: "sess-7", Task: 42, Class: "acme-3"}
}

// checkBacktraceEntry checks a backtrace log line: tagged with slowJob's
// session, task and class and a pid, and naming wait_for_supplier in file.
func checkBacktraceEntry(t *testing.T, e observer.LoggedEntry, file string) {
	t.Helper()
	m := e.ContextMap()
	if m["session"] != "sess-7" || m["task"] != int64(42) || m["class"] != "acme-3" {
		t.Errorf("%q is not tagged with the job: %v", e.Message, m)
	}
	if pid, _ := m["pid"].(int64); pid <= 0 {
		t.Errorf("%q has no pid: %v", e.Message, m)
	}
	bt, _ := m["backtrace"].(string)
	at, _ := m["at"].(string)
	if !strings.Contains(at, file+":") || !strings.HasSuffix(at, " wait_for_supplier()") {
		t.Errorf("%q: at %q, want the line in wait_for_supplier() in %s", e.Message, at, file)
	}
	// An exec script's stack ends at {main}; a worker job's at its Fiber's function.
	if !strings.HasPrefix(bt, "#0 ") || !strings.Contains(bt, "wait_for_supplier()") ||
		!strings.Contains(bt, "{main}") && !strings.Contains(bt, "Worker->Aggregator\\{closure}()") {
		t.Errorf("%q: backtrace %q", e.Message, bt)
	}
	if e.Level != zap.WarnLevel {
		t.Errorf("%q at level %v, want WARN", e.Message, e.Level)
	}
}

// TestSlowlog: a job running past the slowlog gets one "slow job" line with
// its backtrace and tags, and still finishes with its answer.
func TestSlowlog(t *testing.T) {
	t.Parallel()
	for _, m := range btModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			log, logs := observedLog()
			// The slowlog fires well after PHP has started and reached the
			// function, even on a loaded machine (an exec script starts cold).
			r := m.runner(t, "slow", log, 800*time.Millisecond)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			job := slowJob(2)
			start := time.Now()
			res, err := r.Run(ctx, job)
			if err != nil {
				t.Fatalf("the slow job failed: %v", err)
			}
			if !sameJSON(res.Output, job.Input) {
				t.Errorf("answer %s, want %s", res.Output, job.Input)
			}
			if took := time.Since(start); took < 2000*time.Millisecond {
				t.Errorf("the job took %v: the signal cut its wait short", took)
			}
			slow := logs.FilterMessage(whySlow).All()
			if len(slow) != 1 {
				t.Fatalf("%d slow job lines, want 1: %v", len(slow), slow)
			}
			checkBacktraceEntry(t, slow[0], m.file)
			if got := slow[0].ContextMap()["pid"]; got != int64(res.PID) {
				t.Errorf("slow job pid %v, the job ran on %d", got, res.PID)
			}
			if n := logs.FilterMessage("php stderr").Len(); n != 0 {
				t.Errorf("the backtrace leaked into %d php stderr lines: %v", n, logs.FilterMessage("php stderr").All())
			}
			started := logs.FilterMessage("job started").All()
			if len(started) != 1 || started[0].ContextMap()["session"] != "sess-7" || started[0].Level != zap.DebugLevel {
				t.Errorf("job started lines: %v", started)
			}
			// A fast job is not slow.
			if _, err := r.Run(ctx, slowJob(0)); err != nil {
				t.Fatal(err)
			}
			if n := logs.FilterMessage(whySlow).Len(); n != 1 {
				t.Errorf("%d slow job lines after a fast job, want still 1", n)
			}
		})
	}
}

// TestTimeoutBacktrace: a job whose deadline passes gets a "timeout
// backtrace" line first, then is killed: Run returns ErrKilled within the
// deadline plus the backtrace wait.
func TestTimeoutBacktrace(t *testing.T) {
	t.Parallel()
	for _, m := range btModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			log, logs := observedLog()
			r := m.runner(t, "slow", log, 0)
			// Long enough for a cold PHP start on a loaded machine to reach
			// wait_for_supplier before its time runs out.
			res, tb := runPastDeadline(t, r, logs, slowJob(5), 1500*time.Millisecond, BacktraceWait+500*time.Millisecond)
			checkBacktraceEntry(t, tb, m.file)
			waitDead(t, res.PID, "the timed-out PHP")
		})
	}
}

// runPastDeadline runs job on r with deadline. It checks that the job is
// killed (ErrKilled) within deadline+slack and that exactly one "timeout
// backtrace" line was logged before Run returned, not before the deadline;
// it returns the result and that line.
func runPastDeadline(t *testing.T, r Runner, logs *observer.ObservedLogs, job *Job, deadline, slack time.Duration) (Result, observer.LoggedEntry) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	res, err := r.Run(ctx, job)
	took := time.Since(start)
	if !isCode(err, aggregator.EScriptTimeout) {
		t.Fatalf("err %v, want ErrKilled", err)
	}
	if took > deadline+slack {
		t.Errorf("Run took %v, want the deadline (%v) plus at most %v", took, deadline, slack)
	}
	// Logged before Run returned, so before the kill Run waits for.
	tb := logs.FilterMessage(whyTimeout).All()
	if len(tb) != 1 {
		t.Fatalf("%d timeout backtrace lines when Run returned, want 1: %v", len(tb), logs.All())
	}
	// 50 ms: the context's clock starts just before start is read.
	if at := tb[0].Time.Sub(start); at < deadline-50*time.Millisecond {
		t.Errorf("timeout backtrace line at %v, before the deadline %v", at, deadline)
	}
	return res, tb[0]
}

// TestCancelNoBacktrace: a job cancelled (the session ended), not timed
// out, is killed at once, without a backtrace.
func TestCancelNoBacktrace(t *testing.T) {
	t.Parallel()
	for _, m := range btModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			log, logs := observedLog()
			r := m.runner(t, "slow", log, 0)
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(400*time.Millisecond, cancel)
			start := time.Now()
			_, err := r.Run(ctx, slowJob(5))
			if !isCode(err, aggregator.EScriptTimeout) {
				t.Fatalf("err %v, want ErrKilled", err)
			}
			if took := time.Since(start); took > 400*time.Millisecond+BacktraceWait/2 {
				t.Errorf("Run took %v after a cancel at 400ms: it waited for a backtrace", took)
			}
			if n := logs.FilterMessage(whyTimeout).Len(); n != 0 {
				t.Errorf("%d timeout backtrace lines for a cancel", n)
			}
		})
	}
}

// TestBacktraceBlocked: a job blocked in a C call cannot answer the signal;
// it is still killed on time, and the log says the backtrace is missing.
func TestBacktraceBlocked(t *testing.T) {
	t.Parallel()
	for _, m := range btModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			log, logs := observedLog()
			r := m.runner(t, "blocked", log, 0)
			// Long enough for a cold PHP start on a loaded machine to reach
			// the blocking read (before that, there is no handler to ask).
			res, tb := runPastDeadline(t, r, logs, slowJob(0), 1500*time.Millisecond, 500*time.Millisecond)
			cm := tb.ContextMap()
			if _, ok := cm["backtrace"]; ok {
				t.Errorf("a backtrace from a process blocked in fread: %v", cm)
			}
			if note, _ := cm["no_backtrace"].(string); !strings.Contains(note, "did not write it within") {
				t.Errorf("no_backtrace %q", note)
			}
			if cm["session"] != "sess-7" {
				t.Errorf("not tagged with the session: %v", cm)
			}
			waitDead(t, res.PID, "the blocked PHP")
			eventually(t, 5*time.Second, "the blocked PHP's group (sleep 100) is still alive", func() bool {
				return len(groupAlive(res.PID)) == 0
			})
		})
	}
}

// TestSlowlogWithoutHandler: a process without the SIGUSR1 handler (no
// pcntl, no prepend file) is not sent it — it would kill the job; the slow
// job is logged without a backtrace and finishes.
func TestSlowlogWithoutHandler(t *testing.T) {
	t.Parallel()
	modes := map[string]func(t *testing.T, log *zap.Logger) Runner{
		"worker": func(t *testing.T, log *zap.Logger) Runner {
			cfg := workerConfig(t, "slow.php")
			cfg.Command = slices.Insert(cfg.Command, 1, "-d", "disable_functions=pcntl_signal,pcntl_async_signals")
			cfg.Log, cfg.Slowlog = log, 200*time.Millisecond
			return startSupervisor(t, cfg)
		},
		"exec": func(t *testing.T, log *zap.Logger) Runner {
			cfg := execBacktraceConfig(t, "slow_exec.php")
			cfg.Prepend = ""
			cfg.Log, cfg.Slowlog = log, 200*time.Millisecond
			return newExec(t, cfg)
		},
	}
	for name, runner := range modes {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			log, logs := observedLog()
			r := runner(t, log)
			if _, err := run(t, r, Items, `{"seconds":0.6}`); err != nil {
				t.Fatalf("the slow job failed: %v", err)
			}
			slow := logs.FilterMessage(whySlow).All()
			if len(slow) != 1 {
				t.Fatalf("%d slow job lines, want 1", len(slow))
			}
			if note, _ := slow[0].ContextMap()["no_backtrace"].(string); !strings.Contains(note, "has no SIGUSR1 handler") {
				t.Errorf("no_backtrace %q", note)
			}
		})
	}
}

// TestBacktraceOnDemand: an operator's kill -USR1 on a busy worker logs its
// backtrace (message "backtrace", INFO) tagged with the job it runs.
func TestBacktraceOnDemand(t *testing.T) {
	t.Parallel()
	log, logs := observedLog()
	cfg := workerConfig(t, "slow.php")
	cfg.Log = log
	s := startSupervisor(t, cfg)
	pid := pids(s)[0]
	time.AfterFunc(300*time.Millisecond, func() { _ = syscall.Kill(pid, syscall.SIGUSR1) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := s.Run(ctx, slowJob(0.8)); err != nil {
		t.Fatal(err)
	}
	got := logs.FilterMessage(whyAsked).All()
	if len(got) != 1 {
		t.Fatalf("%d backtrace lines, want 1: %v", len(got), logs.All())
	}
	m := got[0].ContextMap()
	if got[0].Level != zap.InfoLevel || m["session"] != "sess-7" || !strings.Contains(m["at"].(string), "slow.php:") {
		t.Errorf("backtrace line %v %v", got[0].Level, m)
	}
}

// TestBacktraceParser: blocks are taken out of the stderr lines, logged as
// one, tagged with the request; other lines pass.
func TestBacktraceParser(t *testing.T) {
	type logged struct {
		why    string
		frames []string
		note   string
	}
	var got []logged
	b := newBacktraces(func(req *btRequest, _ uint32, frames []string, note string) {
		why := whyAsked
		if req != nil {
			why = req.why
		}
		got = append(got, logged{why, frames, note})
	})
	feed := func(lines ...string) (passed []string) {
		for _, l := range lines {
			if !b.line(l) {
				passed = append(passed, l)
			}
		}
		return passed
	}
	if p := feed("warning: x", backtraceBegin, "#0 a.php:1 f()", "#1 a.php:9 {main}", backtraceEnd, "after"); !slices.Equal(p, []string{"warning: x", "after"}) {
		t.Errorf("passed %q", p)
	}
	if len(got) != 1 || got[0].why != whyAsked || !slices.Equal(got[0].frames, []string{"#0 a.php:1 f()", "#1 a.php:9 {main}"}) {
		t.Fatalf("got %+v", got)
	}

	// The ready line is taken too.
	if p := feed(backtraceReady); len(p) != 0 || !b.ready {
		t.Errorf("ready line: passed %q, ready %v", p, b.ready)
	}

	// A request is answered by the next block, then closed.
	req := &btRequest{why: whySlow, done: make(chan struct{})}
	b.pending[0] = req
	feed(backtraceBegin, backtraceEnd)
	select {
	case <-req.done:
	default:
		t.Error("the request was not told its backtrace came")
	}
	if got[1].why != whySlow || len(got[1].frames) != 0 {
		t.Errorf("got %+v", got[1])
	}

	// A block cut short by a new one, or by the end of the process.
	feed(backtraceBegin, "#0 cut.php:1 f()", backtraceBegin, "#0 b.php:2 g()")
	b.close()
	if len(got) != 4 || !strings.Contains(got[2].note, "new backtrace") || !strings.Contains(got[3].note, "exited") ||
		got[3].frames[0] != "#0 b.php:2 g()" {
		t.Errorf("got %+v", got[2:])
	}

	// A huge block is cut.
	lines := []string{backtraceBegin}
	for i := 0; i < maxBacktraceLines+5; i++ {
		lines = append(lines, fmt.Sprintf("#%d x.php:1 f()", i))
	}
	feed(append(lines, backtraceEnd)...)
	if f := got[len(got)-1].frames; len(f) != maxBacktraceLines+1 || f[maxBacktraceLines] != "... 5 more lines" {
		t.Errorf("%d frames, last %q", len(f), f[len(f)-1])
	}
}

// TestBacktraceSections: a worker with several jobs writes one section per
// job; a request gets its job's section, the others are dropped; without a
// request each section is logged with its job id.
func TestBacktraceSections(t *testing.T) {
	type logged struct {
		req    *btRequest
		id     uint32
		frames []string
	}
	var got []logged
	b := newBacktraces(func(req *btRequest, id uint32, frames []string, note string) {
		got = append(got, logged{req, id, frames})
	})
	block := []string{backtraceBegin, "job 3", "#0 a.php:1 f()", "job 7", "#0 b.php:2 g()", "#1 b.php:9 h()", backtraceEnd}
	req := &btRequest{why: whyTimeout, id: 7, done: make(chan struct{})}
	b.pending[7] = req
	for _, l := range block {
		b.line(l)
	}
	if len(got) != 1 || got[0].req != req || got[0].id != 7 || !slices.Equal(got[0].frames, []string{"#0 b.php:2 g()", "#1 b.php:9 h()"}) {
		t.Fatalf("with a request for job 7: %+v", got)
	}
	got = nil
	for _, l := range block {
		b.line(l)
	}
	if len(got) != 2 || got[0].req != nil || got[0].id != 3 || got[1].id != 7 || got[0].frames[0] != "#0 a.php:1 f()" {
		t.Errorf("asked by nobody: %+v", got)
	}
}

func TestWithPrepend(t *testing.T) {
	for _, c := range []struct {
		words []string
		file  string
		want  []string
	}{
		{[]string{"php", "a.php"}, "/p.php", []string{"php", "-d", "auto_prepend_file=/p.php", "a.php"}},
		{[]string{"/usr/bin/php8.2", "-d", "x=1", "a.php"}, "/p.php", []string{"/usr/bin/php8.2", "-d", "auto_prepend_file=/p.php", "-d", "x=1", "a.php"}},
		{[]string{"php", "a.php"}, "", []string{"php", "a.php"}},
		{[]string{"python3", "a.py"}, "/p.php", []string{"python3", "a.py"}},
	} {
		if got := withPrepend(c.words, c.file); !slices.Equal(got, c.want) {
			t.Errorf("withPrepend(%q, %q) = %q, want %q", c.words, c.file, got, c.want)
		}
	}
}

// TestSlowlogStorm: backtrace signals that land anywhere in a worker's
// life — in the handler, while it reads a big job or writes a big answer,
// while idle — break nothing: every answer is right and no worker dies.
func TestSlowlogStorm(t *testing.T) {
	t.Parallel()
	log, logs := observedLog()
	cfg := workerConfig(t, "sleep.php")
	cfg.Workers, cfg.Log, cfg.Slowlog = 2, log, time.Millisecond
	s := startSupervisor(t, cfg)
	before := pids(s)
	for i := 0; i < 100; i++ {
		in := fmt.Sprintf(`{"sleep":0.002,"i":%d,"pad":"%s"}`, i, strings.Repeat("p", (i*7919)%300000))
		res, err := run(t, s, Kind(1+i%2), in)
		if err != nil {
			t.Fatalf("job %d: %v", i, err)
		}
		if !sameJSON(res.Output, []byte(in)) {
			t.Fatalf("job %d: wrong answer %.80s", i, res.Output)
		}
	}
	if after := pids(s); !slices.Equal(before, after) {
		t.Errorf("workers changed from %v to %v: %v", before, after, logs.FilterMessage("worker exited").All())
	}
	n := logs.FilterMessage(whySlow).Len()
	t.Logf("%d slow job lines, %d other backtraces", n, logs.FilterMessage(whyAsked).Len())
	if n == 0 {
		t.Error("no slow job line at all")
	}
	if n := logs.FilterMessage("php stderr").Len(); n != 0 {
		t.Errorf("%d php stderr lines: %v", n, logs.FilterMessage("php stderr").All()[0])
	}
}

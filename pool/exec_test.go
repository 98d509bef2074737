package pool

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/theaspect/aggregator"
)

// execConfig runs the demo scripts with no artificial delay.
func execConfig(t testing.TB) ExecConfig {
	root := repoRoot(t)
	return ExecConfig{
		Suppliers: []string{"php", "-d", "display_errors=stderr", "script/suppliers.php"},
		Items:     []string{"php", "-d", "display_errors=stderr", "script/items.php"},
		Dir:       root,
		Env:       append(os.Environ(), "DEMO_DELAY_MS=0"),
		Processes: 4,
	}
}

// phpCode is an exec command running PHP code given inline.
func phpCode(code string) []string {
	return []string{"php", "-d", "display_errors=stderr", "-r", code}
}

func newExec(t testing.TB, cfg ExecConfig) *Exec {
	e := NewExec(cfg)
	t.Cleanup(func() { closeWithin(t, e, 20*time.Second) })
	return e
}

func TestExecNormal(t *testing.T) {
	t.Parallel()
	e := newExec(t, execConfig(t))
	res := mustRun(t, e, Suppliers, `{"code":"normal","brand":"x","apikey":"1","analog":1}`)
	var out struct {
		Suppliers []struct {
			Class string `json:"class"`
		} `json:"suppliers"`
	}
	if err := json.Unmarshal(res.Output, &out); err != nil || len(out.Suppliers) == 0 {
		t.Fatalf("answer %s: %v", res.Output, err)
	}
	if res.PID <= 0 {
		t.Errorf("pid %d", res.PID)
	}
	if h := e.Health(); h.Status != aggregator.HealthOK {
		t.Errorf("Health: %+v", h)
	}
	if len(e.Info()) != 0 {
		t.Errorf("Info lists finished processes: %v", e.Info())
	}
}

func TestExecFailed(t *testing.T) {
	t.Parallel()
	e := newExec(t, execConfig(t))
	_, err := run(t, e, Suppliers, `"not an object"`)
	if !isCode(err, aggregator.EScriptError) {
		t.Fatalf("err %v, want ErrFailed", err)
	}
	if !strings.Contains(err.Error(), "stdin must hold a JSON object") {
		t.Errorf("err %q does not carry the script's stderr", err)
	}
}

func TestExecStartErrors(t *testing.T) {
	t.Parallel()
	for name, words := range map[string][]string{
		"missing program": {"/nonexistent/php-binary"},
		"missing script":  {"php", "nope.php"},
	} {
		cfg := execConfig(t)
		cfg.Items = words
		e := newExec(t, cfg)
		if _, err := run(t, e, Items, `{}`); !isCode(err, aggregator.EScriptStart) {
			t.Errorf("%s: err %v, want ErrStart", name, err)
		}
	}
	cfg := execConfig(t)
	cfg.Items = []string{"/nonexistent/php-binary"}
	if h := newExec(t, cfg).Health(); h.Status != aggregator.HealthDown {
		t.Error("Health is nil with a missing program")
	}
}

func TestExecTimeout(t *testing.T) {
	t.Parallel()
	cfg := execConfig(t)
	// The script starts a child that would outlive it, then sleeps.
	cfg.Items = phpCode(`proc_open(["sleep", "300"], [["file", "/dev/null", "r"], ["file", "/dev/null", "w"], ["file", "/dev/null", "w"]], $p); sleep(300);`)
	e := newExec(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	res, err := e.Run(ctx, &Job{Kind: Items, Input: []byte(`{}`)})
	if !isCode(err, aggregator.EScriptTimeout) {
		t.Fatalf("err %v, want ErrKilled", err)
	}
	if res.PID <= 0 {
		t.Fatalf("pid %d", res.PID)
	}
	waitDead(t, res.PID, "the timed-out script")
	eventually(t, 5*time.Second, "the script's process group still has live processes", func() bool {
		return len(groupAlive(res.PID)) == 0
	})
}

func TestExecOutputLimit(t *testing.T) {
	t.Parallel()
	cfg := execConfig(t)
	cfg.OutputLimit = 1 << 20
	cfg.Items = phpCode(`echo str_repeat("x", 4 << 20); sleep(300);`)
	cfg.Suppliers = phpCode(`echo str_repeat("y", 500000);`)
	e := newExec(t, cfg)
	res, err := run(t, e, Items, `{}`)
	if !isCode(err, aggregator.EScriptError) {
		t.Fatalf("err %v, want ErrOutputLimit", err)
	}
	if len(res.Output) > 1<<20 {
		t.Errorf("kept %d bytes of output, over the limit", len(res.Output))
	}
	waitDead(t, res.PID, "the script over the output limit")
	if res := mustRun(t, e, Suppliers, `{}`); len(res.Output) != 500000 {
		t.Errorf("500 KB answer: %d bytes", len(res.Output))
	}
}

func TestExecProcessLimit(t *testing.T) {
	t.Parallel()
	cfg := execConfig(t)
	cfg.Processes = 2
	cfg.Items = phpCode(`usleep(300000); echo "{}";`)
	e := newExec(t, cfg)
	var wg sync.WaitGroup
	var errs errorsOnly
	var finished atomic.Int64
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := run(t, e, Items, `{}`); err != nil {
				errs.add(err)
			}
			finished.Add(1)
		}()
	}
	most := 0
	for finished.Load() < 6 {
		n := len(e.Info())
		if n > most {
			most = n
		}
		for _, p := range e.Info() {
			if p.State != "busy" || p.PID <= 0 {
				t.Errorf("odd process info %+v", p)
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	wg.Wait()
	errs.check(t)
	t.Logf("at most %d processes at once", most)
	if most > 2 {
		t.Errorf("%d processes ran at once with Processes=2", most)
	}
	if most == 0 {
		t.Error("never saw a running process")
	}
}

func TestExecClose(t *testing.T) {
	t.Parallel()
	cfg := execConfig(t)
	cfg.Items = phpCode(`sleep(300);`)
	e := NewExec(cfg)
	results := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() {
			_, err := e.Run(context.Background(), &Job{Kind: Items, Input: []byte(`{}`)})
			results <- err
		}()
	}
	eventually(t, 10*time.Second, "the scripts did not start", func() bool { return len(e.Info()) == 2 })
	running := pids(e)
	closeWithin(t, e, 10*time.Second)
	for i := 0; i < 2; i++ {
		select {
		case err := <-results:
			if !isCode(err, aggregator.EScriptCancelled) {
				t.Errorf("a running job ended with %v, want ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a running job did not end with Close")
		}
	}
	for _, pid := range running {
		waitDead(t, pid, "a script after Close")
	}
	if _, err := e.Run(context.Background(), &Job{Kind: Items, Input: []byte(`{}`)}); !isCode(err, aggregator.EScriptCancelled) {
		t.Errorf("Run after Close: %v, want ErrClosed", err)
	}
}

func TestExecNotStarted(t *testing.T) {
	t.Parallel()
	cfg := execConfig(t)
	cfg.Processes = 1
	cfg.Items = phpCode(`sleep(2);`)
	e := newExec(t, cfg)
	go func() { _, _ = run(t, e, Items, `{}`) }()
	eventually(t, 10*time.Second, "the first script did not start", func() bool { return len(e.Info()) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := e.Run(ctx, &Job{Kind: Items, Input: []byte(`{}`)}); !isCode(err, aggregator.EScriptCancelled) {
		t.Errorf("err %v, want ErrNotStarted", err)
	}
}

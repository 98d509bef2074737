package integration

// Messages that say what to do (issue 17, point 4): a mistyped key names the
// key it meant, a timeout names its limit and what the job was waiting for,
// a memory_limit fatal names where the limit comes from.

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// kitArgs run integration/testdata/kit.php in a mode.
var kitArgs = map[string][]string{
	"worker": {"-Daggregator.pool.mode=worker", "-Daggregator.worker.handlers=integration/testdata/kit.php"},
	"exec": {"-Daggregator.pool.mode=exec",
		"-Daggregator.script.suppliers=php -d display_errors=stderr integration/testdata/kit_exec.php suppliers",
		"-Daggregator.script.items=php -d display_errors=stderr integration/testdata/kit_exec.php items"},
}

// TestMistypedKey: `call` with a mistyped -D key does not run the demo
// handlers as if all were well: exit 2, naming the key it meant.
func TestMistypedKey(t *testing.T) {
	r := dkCall(t, nil, "-Daggregator.worker.handler=script/example/handlers.php", "call", "items", `{"class":"normal-1"}`)
	if r.exit != 2 || r.stdout != "" || !strings.Contains(r.stderr, "aggregator.worker.handler: unknown key given with -D; did you mean aggregator.worker.handlers?") {
		t.Errorf("call with -Daggregator.worker.handler: want exit 2 and the key it meant:\n%s", r)
	}
}

// TestTimeoutSaysWhatTheJobWaitedFor: a job waiting in fetch() for a slow
// supplier when its time runs out: the browser gets E_SCRIPT_TIMEOUT, and the
// "task failed" line names aggregator.timeout.script, its value and the call
// in flight. Worker mode with several jobs per worker, as fetch() is meant.
func TestTimeoutSaysWhatTheJobWaitedFor(t *testing.T) {
	t.Parallel()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // answers after 10 s, or when the aggregator gives up
		case <-time.After(10 * time.Second):
		case <-r.Context().Done():
		}
		fmt.Fprint(w, `{"items":[]}`)
	}))
	defer slow.Close()
	s := startServer(t, nil, append(kitArgs["worker"], "-Daggregator.pool.concurrency=4",
		"-Daggregator.pool.executor=2", "-Daggregator.timeout.script=1.5")...)
	url := slow.URL + "/search?article=3310"
	r := s.session(t, 20*time.Second, fmt.Sprintf(`{"code":%q,"brand":"ctr","apikey":"1","analog":1}`, url))
	if got := r.Errors(); len(got) != 1 || got[0] != "E_SCRIPT_TIMEOUT" || r.Count("PENDING") != 1 {
		t.Fatalf("want PENDING and E_SCRIPT_TIMEOUT, got %v", r.Msgs)
	}
	task := fmt.Sprintf(`"task": %d`, r.Msgs[len(r.Msgs)-1].id())
	dkLogLine(t, s, "task failed", task, `"code": "E_SCRIPT_TIMEOUT"`,
		`"limit": "aggregator.timeout.script=1.5s"`, "its time ran out while waiting for GET "+url+" (")
}

// TestMemoryLimitSaysWhereItComesFrom: a handler that exhausts memory_limit:
// the log's "handler failed" and "task failed" lines and `aggregator call`
// say the limit and where it is set, in both modes.
func TestMemoryLimitSaysWhereItComesFrom(t *testing.T) {
	const hint = "memory_limit is 32M: it comes from -d memory_limit=… in aggregator.worker.command (worker mode) or the script command (exec mode)"
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			args := append([]string{}, kitArgs[mode]...)
			if mode == "worker" {
				args = append(args, "-Daggregator.worker.command=php -d display_errors=stderr -d memory_limit=32M worker.php")
			} else {
				args = []string{args[0],
					"-Daggregator.script.suppliers=php -d display_errors=stderr integration/testdata/kit_exec.php suppliers",
					"-Daggregator.script.items=php -d display_errors=stderr -d memory_limit=32M integration/testdata/kit_exec.php items"}
			}
			c := dkCall(t, nil, append(args, "call", "items", `{"class":"hog-1"}`)...)
			if c.exit != 1 || !strings.Contains(c.stdout, "error:     E_SCRIPT_ERROR\n") ||
				!strings.Contains(c.stdout, "exception: FatalError: Allowed memory size of 33554432 bytes exhausted") ||
				!strings.Contains(c.stdout, "hint: "+hint) {
				t.Errorf("call items hog-1: want E_SCRIPT_ERROR and the hint:\n%s", c)
			}

			s := startServer(t, nil, args...)
			r := s.session(t, 20*time.Second, request("hog"))
			if got := r.Errors(); len(got) != 1 || got[0] != "E_SCRIPT_ERROR" {
				t.Fatalf("want E_SCRIPT_ERROR, got %v", r.Msgs)
			}
			if _, has := r.Msgs[len(r.Msgs)-1]["_message"]; has {
				t.Errorf("the fatal error reached the browser: %v", r.Msgs)
			}
			task := fmt.Sprintf(`"task": %d`, r.Msgs[len(r.Msgs)-1].id())
			dkLogLine(t, s, "handler failed", task, `"exception": "FatalError"`, `"hint": "`+hint)
			dkLogLine(t, s, "task failed", task, `"code": "E_SCRIPT_ERROR"`, hint)
		})
	}
}

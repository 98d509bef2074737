package integration

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSlowlog: with aggregator.pool.slowlog the log has the backtrace of a
// slow job, and every E_SCRIPT_TIMEOUT has the backtrace taken before the
// kill; both name the function and file where PHP was, and the session,
// task and supplier — in both modes. PHP is pool/testdata: slow.php
// (worker handlers) and slow_exec.php (an unmodified first-implementation
// style script, which gets the backtrace from the prepend file); each job
// waits {"seconds": N} in wait_for_supplier() and echoes its input.
func TestSlowlog(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			file := "slow.php"
			php := []string{"-Daggregator.worker.handlers=pool/testdata/slow.php"}
			if mode == "exec" {
				file = "slow_exec.php"
				php = []string{"-Daggregator.script.suppliers=php pool/testdata/slow_exec.php",
					"-Daggregator.script.items=php pool/testdata/slow_exec.php"}
			}
			s := startServer(t, nil, append(php, "-Daggregator.pool.mode="+mode,
				"-Daggregator.pool.executor=4", "-Daggregator.pool.slowlog=0.8", "-Daggregator.timeout.script=3",
				"-Daggregator.fields.request=code,suppliers", "-Dlogging.level.me.blzr.aggregator=DEBUG")...)

			// The suppliers job echoes the request, so its suppliers are
			// these: items jobs that wait 1.6 s (slow, succeeds) and 5 s (killed
			// at 3 s, slow first). The slowlog (0.8 s) leaves a cold PHP start
			// on a loaded machine time to reach the waiting function. Each echoes its element, "items": [] included.
			r := s.session(t, 15*time.Second, `{"code":"x","suppliers":[`+
				`{"class":"slow-1","seconds":1.6,"items":[],"info":{"name":"slow-1"}},`+
				`{"class":"stuck-2","seconds":5,"items":[],"info":{"name":"stuck-2"}}]}`)
			var session string
			ids := map[string]int64{} // supplier -> task id, from the messages
			outcome := map[string]string{}
			for _, m := range r.Msgs {
				session = m.str("_session")
				var info struct {
					Name string `json:"name"`
				}
				if b, err := json.Marshal(m["_info"]); err == nil && json.Unmarshal(b, &info) == nil && info.Name != "" {
					ids[info.Name] = m.id()
					if st := m.str("_status"); st != "PENDING" {
						outcome[info.Name] = st + m.str("_error")
					}
				}
			}
			if outcome["slow-1"] != "SUCCESS" || outcome["stuck-2"] != "ERRORE_SCRIPT_TIMEOUT" || ids["slow-1"] == 0 || ids["stuck-2"] == 0 {
				t.Fatalf("outcomes %v ids %v; messages %v", outcome, ids, r.Msgs)
			}

			var slowPID, stuckPID float64
			eventually(t, 5*time.Second, func() string {
				log := s.Log()
				slow := logLines(log, "slow job")
				if len(slow) != 2 {
					return fmt.Sprintf("%d slow job lines, want 2 (slow-1, stuck-2):\n%s", len(slow), log)
				}
				if slow[0]["class"] != "slow-1" {
					slow[0], slow[1] = slow[1], slow[0]
				}
				for i, class := range []string{"slow-1", "stuck-2"} {
					if msg := checkBacktraceLine(slow[i], session, ids[class], class, file); msg != "" {
						return "slow job: " + msg
					}
				}
				tb := logLines(log, "timeout backtrace")
				if len(tb) != 1 {
					return fmt.Sprintf("%d timeout backtrace lines, want 1 (stuck-2):\n%s", len(tb), log)
				}
				if msg := checkBacktraceLine(tb[0], session, ids["stuck-2"], "stuck-2", file); msg != "" {
					return "timeout backtrace: " + msg
				}
				slowPID, _ = slow[0]["pid"].(float64)
				stuckPID, _ = tb[0]["pid"].(float64)
				return ""
			})

			// The DEBUG trail of the session says which pid ran each task,
			// the same pids as the backtraces.
			started := map[float64]float64{} // task -> pid
			for _, l := range logLines(s.Log(), "job started") {
				if l["session"] == session {
					started[l["task"].(float64)] = l["pid"].(float64)
				}
			}
			if started[float64(ids["slow-1"])] != slowPID || started[float64(ids["stuck-2"])] != stuckPID || slowPID == 0 {
				t.Errorf("job started pids %v; backtraces: slow-1 on %v, stuck-2 on %v", started, slowPID, stuckPID)
			}
		})
	}
}

// logLines are the fields of the log lines with message msg (the console
// encoder: time, level, message, then the fields as JSON, tab-separated).
func logLines(log, msg string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(log, "\n") {
		parts := strings.Split(line, "\t")
		if len(parts) < 4 || parts[2] != msg {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(parts[len(parts)-1]), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// checkBacktraceLine: tagged with the session, task and supplier, and its
// innermost frame is wait_for_supplier() in file.
func checkBacktraceLine(l map[string]any, session string, task int64, class, file string) string {
	if l["session"] != session || l["task"] != float64(task) || l["class"] != class {
		return fmt.Sprintf("tags %v, want session %s task %d class %s", l, session, task, class)
	}
	bt, _ := l["backtrace"].(string)
	first, _, _ := strings.Cut(bt, "\n")
	f, line, fn := "", "", ""
	if w := strings.Fields(first); len(w) == 3 {
		f, line, _ = strings.Cut(w[1], ":")
		fn = w[2]
	}
	// An exec script's stack ends at {main}, a worker job's at its Fiber's function.
	if filepath.Base(f) != file || line == "" || fn != "wait_for_supplier()" ||
		!strings.Contains(bt, "{main}") && !strings.Contains(bt, "Worker->Aggregator\\{closure}()") {
		return fmt.Sprintf("backtrace %q, want #0 in wait_for_supplier() in %s", bt, file)
	}
	return ""
}

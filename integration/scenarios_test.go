package integration

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// expect is what SPEC §6 says the browser sees for a scenario.
type expect struct {
	pending, sending, success int
	errors                    []string // sorted _error codes
	close                     int
}

// scenarios are SPEC §6's (and the demo's publicError), with the script time at 3 s and the session time
// above it (sessionTimeout has its own test).
var scenarios = map[string]expect{
	"normal":               {3, 9, 3, nil, 1000},
	"analog":               {5, 15, 5, nil, 1000},
	"mixed":                {6, 12, 4, []string{"E_SCRIPT_ERROR", "E_SCRIPT_TIMEOUT"}, 1000},
	"emptySuppliers":       {0, 0, 0, nil, 1000},
	"suppliersTimeout":     {0, 0, 0, []string{"E_SCRIPT_TIMEOUT"}, 1000},
	"suppliersError":       {0, 0, 0, []string{"E_SCRIPT_ERROR"}, 1000},
	"suppliersNotJson":     {0, 0, 0, []string{"E_SUPPLIERS_JSON"}, 1000},
	"suppliersBadResponse": {0, 0, 0, []string{"E_SUPPLIERS_RESPONSE"}, 1000},
	"emptyItems":           {3, 0, 3, nil, 1000},
	"itemsTimeout":         {3, 0, 0, []string{"E_SCRIPT_TIMEOUT", "E_SCRIPT_TIMEOUT", "E_SCRIPT_TIMEOUT"}, 1000},
	"itemsError":           {2, 0, 0, []string{"E_SCRIPT_ERROR", "E_SCRIPT_ERROR"}, 1000},
	"itemsBadJson":         {2, 0, 0, []string{"E_ITEMS_JSON", "E_ITEMS_JSON"}, 1000},
	"itemsBadResponse":     {2, 0, 0, []string{"E_ITEMS_RESPONSE", "E_ITEMS_RESPONSE"}, 1000},
	// Beyond SPEC §6: refused-2 throws a PublicError (TestPublicError checks its _message).
	"publicError": {2, 3, 1, []string{"E_SCRIPT_ERROR"}, 1000},
}

var modes = []string{"exec", "worker"}

func TestScenarios(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, nil, "-Daggregator.pool.mode="+mode,
				"-Daggregator.timeout.script=3", "-Daggregator.timeout.session=10")
			for code, want := range scenarios {
				t.Run(code, func(t *testing.T) {
					t.Parallel()
					r := s.session(t, 20*time.Second, request(code))
					checkResult(t, code, r, want)
				})
			}
		})
	}
}

// checkResult checks counts, codes, close code, and every message's fields
// and per-task order.
func checkResult(t *testing.T, code string, r Result, want expect) {
	t.Helper()
	got := expect{r.Count("PENDING"), r.Count("SENDING"), r.Count("SUCCESS"), r.Errors(), r.CloseCode}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: got %+v, want %+v\nmessages: %v", code, got, want, r.Msgs)
	}
	checkMessages(t, r, code)
}

// checkMessages checks the SPEC §4 rules every session must keep.
func checkMessages(t *testing.T, r Result, code string) {
	t.Helper()
	session := ""
	state := map[int64]string{} // task id -> last status
	info := map[int64]string{}  // task id -> its supplier
	for i, m := range r.Msgs {
		where := fmt.Sprintf("message %d %v", i, m)
		s := m.str("_session")
		if s == "" {
			t.Fatalf("%s: no _session", where)
		}
		if session == "" {
			session = s
		} else if s != session {
			t.Fatalf("%s: _session %q differs from %q", where, s, session)
		}
		task, status := m.str("_task"), m.str("_status")
		switch task {
		case "SESSION":
			if _, has := m["_id"]; has {
				t.Errorf("%s: a SESSION error carries _id", where)
			}
			if status != "ERROR" {
				t.Errorf("%s: SESSION message with status %s", where, status)
			}
			continue
		case "SUPPLIERS":
			if status != "ERROR" {
				t.Errorf("%s: the suppliers task sends only ERROR", where)
			}
			checkParams(t, m, code, where)
			continue
		case "ITEMS":
		default:
			t.Fatalf("%s: bad _task %q", where, task)
		}
		if _, isNum := m["_id"].(float64); !isNum {
			t.Fatalf("%s: _id is not a number", where)
		}
		id := m.id()
		inf, _ := m["_info"].(map[string]any)
		sup, _ := inf["supplier"].(string)
		if sup == "" {
			t.Errorf("%s: items message without _info.supplier", where)
		}
		if prev, ok := info[id]; ok && prev != sup {
			t.Errorf("%s: _info changed within task %d", where, id)
		}
		info[id] = sup
		prev := state[id]
		switch status {
		case "PENDING":
			if prev != "" {
				t.Errorf("%s: PENDING after %s", where, prev)
			}
		case "SENDING":
			if prev != "PENDING" && prev != "SENDING" {
				t.Errorf("%s: SENDING after %q", where, prev)
			}
			for _, f := range []string{"code", "brand", "name", "price", "quantity"} {
				if _, ok := m[f]; !ok {
					t.Errorf("%s: item without %s", where, f)
				}
			}
			if m.str("supplier") != sup {
				t.Errorf("%s: item of supplier %q in task of %q (mixed up)", where, m.str("supplier"), sup)
			}
		case "SUCCESS", "ERROR":
			if prev != "PENDING" && prev != "SENDING" {
				t.Errorf("%s: %s after %q", where, status, prev)
			}
			if status == "ERROR" {
				checkParams(t, m, code, where)
			}
		default:
			t.Errorf("%s: bad _status", where)
		}
		state[id] = status
	}
	for id, st := range state {
		if st != "SUCCESS" && st != "ERROR" && r.CloseCode == 1000 {
			t.Errorf("task %d ended in state %s", id, st)
		}
	}
}

func checkParams(t *testing.T, m Msg, code, where string) {
	t.Helper()
	p, _ := m["_params"].(map[string]any)
	if p["code"] != code || p["brand"] != "ctr" || p["analog"] != float64(1) || p["apikey"] != nil {
		t.Errorf("%s: _params %v, want code, brand, analog of the request (and no apikey)", where, p)
	}
}

func TestSessionTimeout(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, nil, "-Daggregator.pool.mode="+mode,
				"-Daggregator.timeout.script=10", "-Daggregator.timeout.session=3")
			start := time.Now()
			r := s.session(t, 20*time.Second, request("sessionTimeout"))
			if d := time.Since(start); d < 3*time.Second || d > 6*time.Second {
				t.Errorf("session took %v, want about 3 s", d)
			}
			if r.CloseCode != 1011 {
				t.Errorf("close code %d, want 1011", r.CloseCode)
			}
			if n := r.Count("PENDING"); n != 2001 {
				t.Errorf("%d PENDING, want 2001", n)
			}
			if r.Count("SENDING") != 3 || r.Count("SUCCESS") != 1 {
				t.Errorf("normal-1 gave %d SENDING, %d SUCCESS; want 3, 1", r.Count("SENDING"), r.Count("SUCCESS"))
			}
			if got := r.Errors(); !reflect.DeepEqual(got, []string{"E_SESSION_TIMEOUT"}) {
				t.Errorf("errors %v, want one E_SESSION_TIMEOUT", got)
			}
			last := r.Msgs[len(r.Msgs)-1]
			if last.str("_task") != "SESSION" || last.str("_error") != "E_SESSION_TIMEOUT" {
				t.Errorf("last message %v, want the SESSION timeout", last)
			}
			checkMessages(t, r, "sessionTimeout")
			// Its sleeping scripts are killed: nothing of the session keeps running.
			eventually(t, 3*time.Second, func() string {
				st := s.stats(t)
				if st.TaskPending != 0 || st.SessionAlive != 0 {
					return fmt.Sprintf("stats after the timeout: %v", st)
				}
				return ""
			})
			checkNoBusyPHP(t, s, mode)
		})
	}
}

// checkNoBusyPHP waits until no PHP process is running a job: in exec mode
// no script process is left; in worker mode no worker is busy.
func checkNoBusyPHP(t *testing.T, s *Server, mode string) {
	t.Helper()
	eventually(t, 3*time.Second, func() string {
		if mode == "exec" {
			if procs := phpChildren(t, s.Cmd.Process.Pid); len(procs) > 0 {
				return fmt.Sprintf("PHP processes left: %v", procs)
			}
			return ""
		}
		for _, x := range s.workers(t) {
			if x.State == "busy" {
				return fmt.Sprintf("worker %d still busy", x.PID)
			}
		}
		// Only the pool's workers are left: each a worker.php and nothing they forked.
		for pid, cmd := range phpChildren(t, s.Cmd.Process.Pid) {
			if !strings.Contains(cmd, "worker.php") {
				return fmt.Sprintf("process %d %q left", pid, cmd)
			}
		}
		return ""
	})
}

func TestBrowserCases(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, nil, "-Daggregator.pool.mode="+mode,
				"-Daggregator.timeout.script=3", "-Daggregator.timeout.session=10")
			t.Run("badJson", func(t *testing.T) {
				t.Parallel()
				r := s.session(t, 5*time.Second, `{not json`)
				if len(r.Msgs) != 1 || r.Msgs[0].str("_error") != "E_REQUEST_JSON" || r.Msgs[0].str("_task") != "SESSION" {
					t.Fatalf("got %v, want one E_REQUEST_JSON", r.Msgs)
				}
				if _, has := r.Msgs[0]["_params"]; has {
					t.Errorf("E_REQUEST_JSON carries _params: %v", r.Msgs[0])
				}
				if r.CloseCode != 1008 {
					t.Errorf("close %d, want 1008", r.CloseCode)
				}
			})
			t.Run("notObject", func(t *testing.T) {
				t.Parallel()
				r := s.session(t, 5*time.Second, `[1,2,3]`)
				if len(r.Msgs) != 1 || r.Msgs[0].str("_error") != "E_REQUEST_JSON" || r.CloseCode != 1008 {
					t.Fatalf("got %v close %d, want one E_REQUEST_JSON and 1008", r.Msgs, r.CloseCode)
				}
			})
			t.Run("missingField", func(t *testing.T) {
				t.Parallel()
				r := s.session(t, 5*time.Second, `{"code":"normal","brand":"ctr"}`)
				if len(r.Msgs) != 1 || r.Msgs[0].str("_error") != "E_ILLEGAL_REQUEST" {
					t.Fatalf("got %v, want one E_ILLEGAL_REQUEST", r.Msgs)
				}
				p, _ := r.Msgs[0]["_params"].(map[string]any)
				if p["code"] != "normal" || p["brand"] != "ctr" {
					t.Errorf("_params %v, want the parsed request's code and brand", p)
				}
				if r.CloseCode != 1008 {
					t.Errorf("close %d, want 1008", r.CloseCode)
				}
			})
			t.Run("secondRequest", func(t *testing.T) {
				t.Parallel()
				r := s.session(t, 10*time.Second, request("normal"), request("analog"))
				want := expect{3, 9, 3, []string{"E_SESSION_REUSED"}, 1000}
				checkResult(t, "normal", r, want)
			})
			t.Run("closeEarly", func(t *testing.T) {
				t.Parallel()
				c := s.dial(t, "/ws")
				if err := c.WriteMessage(1, []byte(request("itemsTimeout"))); err != nil {
					t.Fatal(err)
				}
				// Wait until its three scripts run (the PENDING messages
				// give the session id), then leave.
				_, first, err := c.ReadMessage()
				if err != nil {
					t.Fatal(err)
				}
				var m Msg
				_ = json.Unmarshal(first, &m)
				eventually(t, 10*time.Second, func() string {
					if n := s.runningFor(t, m.str("_session")); n != 3 {
						return fmt.Sprintf("%d of the session's 3 scripts run", n)
					}
					return ""
				})
				c.Close()
				checkNoBusyPHP(t, s, mode)
				eventually(t, 3*time.Second, func() string {
					st := s.stats(t)
					if st.SessionAlive != 0 || st.TaskPending != 0 {
						return fmt.Sprintf("stats after close: %v", st)
					}
					return ""
				})
			})
		})
	}
}

func TestLegacyScripts(t *testing.T) {
	s := startServer(t, nil, "-Daggregator.pool.mode=exec",
		"-Daggregator.script.suppliers=php script/legacy/suppliers.php",
		"-Daggregator.script.items=php script/legacy/items.php")
	r := s.session(t, 10*time.Second, request("3310"))
	if r.Count("PENDING") != 2 || r.Count("SENDING") != 4 || r.Count("SUCCESS") != 2 || r.CloseCode != 1000 {
		t.Fatalf("legacy scripts: %d PENDING %d SENDING %d SUCCESS close %d; want 2, 4, 2, 1000\n%v",
			r.Count("PENDING"), r.Count("SENDING"), r.Count("SUCCESS"), r.CloseCode, r.Msgs)
	}
}

// TestSmallPool plays the scenarios that keep several tasks of one session
// busy at once on a pool of 4: the default per-session cap must not change
// their outcome (SPEC §13).
func TestSmallPool(t *testing.T) {
	s := startServer(t, nil, "-Daggregator.pool.executor=4",
		"-Daggregator.timeout.script=3", "-Daggregator.timeout.session=10")
	// One at a time: in parallel, itemsTimeout's 3 sleepers and mixed's one
	// would hold all 4 workers, and mixed's nested tasks would rightly
	// expire in the queue.
	for _, code := range []string{"mixed", "itemsTimeout", "analog"} {
		t.Run(code, func(t *testing.T) {
			checkResult(t, code, s.session(t, 20*time.Second, request(code)), scenarios[code])
		})
	}
}

package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/theaspect/aggregator"
	"go.uber.org/zap"
)

// scripted is a Runner whose answers come from a function of the job, so
// the session state machine can be driven through every path; the real PHP
// runners are exercised by pool's and integration's tests.
type scripted struct {
	answer func(ctx context.Context, job *aggregator.Job) (string, error)
	mu     sync.Mutex
	ran    []string
}

func (s *scripted) Run(ctx context.Context, job *aggregator.Job) (aggregator.Result, error) {
	s.mu.Lock()
	s.ran = append(s.ran, job.Class)
	s.mu.Unlock()
	out, err := s.answer(ctx, job)
	return aggregator.Result{Output: []byte(out)}, err
}
func (s *scripted) Health() aggregator.Health   { return aggregator.Health{Status: aggregator.HealthOK} }
func (s *scripted) Info() []aggregator.ProcInfo { return nil }

func testConfig() Config {
	return Config{
		RequestFields: []string{"code", "brand", "apikey", "analog"}, FaultyFields: []string{"code", "brand", "analog"},
		ItemsField: "items", SuppliersField: "suppliers", InfoField: "info",
		ScriptTimeout: 2 * time.Second, SessionTimeout: 5 * time.Second,
		Capacity: 4, SessionLimit: 4, MaxSessions: 100, MaxRequestSize: 4096, MaxSessionTasks: 100, SendQueue: 1000,
	}
}

func startTest(t *testing.T, cfg Config, r PHP) (*Server, string) {
	t.Helper()
	srv := New(cfg, r, zap.NewNop(), prometheus.NewRegistry())
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		srv.Shutdown(context.Background())
		hs.Close()
	})
	return srv, "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"
}

type got struct {
	msgs  []map[string]any
	raw   []string
	close int
}

func (g got) summary() []string {
	var out []string
	for _, m := range g.msgs {
		s := fmt.Sprint(m["_task"], " ", m["_status"])
		if e, ok := m["_error"]; ok {
			s += " " + fmt.Sprint(e)
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func play(t *testing.T, url string, messages ...string) got {
	t.Helper()
	return playUntil(t, url, nil, messages...)
}

// playUntil is play, calling seen (unless nil) with each message as it comes.
func playUntil(t *testing.T, url string, seen func(map[string]any), messages ...string) got {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, m := range messages {
		if err := c.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	var g got
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, data, err := c.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				g.close = ce.Code
				return g
			}
			t.Fatalf("read: %v", err)
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("not JSON: %q", data)
		}
		g.msgs = append(g.msgs, m)
		g.raw = append(g.raw, string(data))
		if seen != nil {
			seen(m)
		}
	}
}

const req = `{"code":"c1","brand":"b1","apikey":"k","analog":1,"extra":"dropped"}`

func supplierList(classes ...string) string {
	var parts []string
	for _, c := range classes {
		parts = append(parts, fmt.Sprintf(`{"class":%q,"info":{"s":%q}}`, c, c))
	}
	return `{"suppliers":[` + strings.Join(parts, ",") + `]}`
}

func TestSessionStateMachine(t *testing.T) {
	items2 := `{"items":[{"code":"a"},{"code":"b"}]}`
	cases := []struct {
		name   string
		send   []string
		answer func(ctx context.Context, job *aggregator.Job) (string, error)
		want   []string // sorted "TASK STATUS [ERROR]"
		close  int
	}{
		{"not JSON", []string{`{oops`}, nil, []string{"SESSION ERROR E_REQUEST_JSON"}, 1008},
		{"not an object", []string{`"str"`}, nil, []string{"SESSION ERROR E_REQUEST_JSON"}, 1008},
		{"missing field", []string{`{"code":"x"}`}, nil, []string{"SESSION ERROR E_ILLEGAL_REQUEST"}, 1008},
		{"null field", []string{`{"code":"x","brand":null,"apikey":"k","analog":1}`}, nil, []string{"SESSION ERROR E_ILLEGAL_REQUEST"}, 1008},
		{"no suppliers", []string{req}, func(context.Context, *aggregator.Job) (string, error) { return `{"suppliers":[]}`, nil }, nil, 1000},
		{"suppliers start", []string{req}, func(context.Context, *aggregator.Job) (string, error) {
			return "", aggregator.Errorf(aggregator.EScriptStart, "cannot start")
		},
			[]string{"SUPPLIERS ERROR E_SCRIPT_START"}, 1000},
		{"suppliers fail", []string{req}, func(context.Context, *aggregator.Job) (string, error) {
			return "", aggregator.Errorf(aggregator.EScriptError, "failed")
		},
			[]string{"SUPPLIERS ERROR E_SCRIPT_ERROR"}, 1000},
		{"suppliers output limit", []string{req}, func(context.Context, *aggregator.Job) (string, error) {
			return "", &aggregator.Error{Code: aggregator.EScriptError, Limit: "output_size"}
		},
			[]string{"SUPPLIERS ERROR E_SCRIPT_ERROR"}, 1000},
		{"suppliers killed", []string{req}, func(context.Context, *aggregator.Job) (string, error) {
			return "", aggregator.Errorf(aggregator.EScriptTimeout, "killed")
		},
			[]string{"SUPPLIERS ERROR E_SCRIPT_TIMEOUT"}, 1000},
		{"suppliers bug", []string{req}, func(context.Context, *aggregator.Job) (string, error) { return "", errors.New("weird") },
			[]string{"SUPPLIERS ERROR E_UNKNOWN"}, 1000},
		{"suppliers not JSON", []string{req}, func(context.Context, *aggregator.Job) (string, error) { return "Not a JSON", nil },
			[]string{"SUPPLIERS ERROR E_SUPPLIERS_JSON"}, 1000},
		{"suppliers JSON array", []string{req}, func(context.Context, *aggregator.Job) (string, error) { return `[1]`, nil },
			[]string{"SUPPLIERS ERROR E_SUPPLIERS_JSON"}, 1000},
		{"suppliers missing", []string{req}, func(context.Context, *aggregator.Job) (string, error) { return `{"x":1}`, nil },
			[]string{"SUPPLIERS ERROR E_SUPPLIERS_RESPONSE"}, 1000},
		{"suppliers not array", []string{req}, func(context.Context, *aggregator.Job) (string, error) { return `{"suppliers":{}}`, nil },
			[]string{"SUPPLIERS ERROR E_SUPPLIERS_RESPONSE"}, 1000},
		{"supplier not object", []string{req}, func(context.Context, *aggregator.Job) (string, error) { return `{"suppliers":[1]}`, nil },
			[]string{"SUPPLIERS ERROR E_SUPPLIERS_RESPONSE"}, 1000},
		{"items", []string{req}, func(_ context.Context, j *aggregator.Job) (string, error) {
			if j.Kind == aggregator.Suppliers {
				return supplierList("a", "b"), nil
			}
			return items2, nil
		}, []string{"ITEMS PENDING", "ITEMS PENDING", "ITEMS SENDING", "ITEMS SENDING", "ITEMS SENDING", "ITEMS SENDING", "ITEMS SUCCESS", "ITEMS SUCCESS"}, 1000},
		{"items errors", []string{req}, func(_ context.Context, j *aggregator.Job) (string, error) {
			switch j.Class {
			case "":
				return supplierList("json", "resp", "notarray", "fail", "start", "elem"), nil
			case "json":
				return "nope", nil
			case "resp":
				return `{"foo":[]}`, nil
			case "notarray":
				return `{"items":"x"}`, nil
			case "fail":
				return "", aggregator.Errorf(aggregator.EScriptError, "failed")
			case "start":
				return "", aggregator.Errorf(aggregator.EScriptStart, "cannot start")
			}
			return `{"items":[{"a":1},2]}`, nil
		}, []string{"ITEMS ERROR E_ITEMS_JSON", "ITEMS ERROR E_ITEMS_RESPONSE", "ITEMS ERROR E_ITEMS_RESPONSE",
			"ITEMS ERROR E_ITEMS_RESPONSE", "ITEMS ERROR E_SCRIPT_ERROR", "ITEMS ERROR E_SCRIPT_START",
			"ITEMS PENDING", "ITEMS PENDING", "ITEMS PENDING", "ITEMS PENDING", "ITEMS PENDING", "ITEMS PENDING"}, 1000},
		{"nested", []string{req}, func(_ context.Context, j *aggregator.Job) (string, error) {
			switch j.Class {
			case "":
				return supplierList("top"), nil
			case "top":
				return `{"items":[{"code":"t"}],"suppliers":[{"class":"n1"},{"class":"n2"}]}`, nil
			}
			return `{"items":[]}`, nil
		}, []string{"ITEMS PENDING", "ITEMS PENDING", "ITEMS PENDING", "ITEMS SENDING", "ITEMS SUCCESS", "ITEMS SUCCESS", "ITEMS SUCCESS"}, 1000},
		{"second request", []string{req, req}, func(_ context.Context, j *aggregator.Job) (string, error) {
			time.Sleep(100 * time.Millisecond)
			return `{"suppliers":[]}`, nil
		}, []string{"SESSION ERROR E_SESSION_REUSED"}, 1000},
		{"session timeout", []string{req}, func(ctx context.Context, j *aggregator.Job) (string, error) {
			if j.Kind == aggregator.Suppliers {
				return supplierList("slow"), nil
			}
			<-ctx.Done()
			return "", aggregator.Errorf(aggregator.EScriptTimeout, "killed")
		}, []string{"ITEMS PENDING", "SESSION ERROR E_SESSION_TIMEOUT"}, 1011},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig()
			if tc.name == "session timeout" {
				cfg.SessionTimeout = 300 * time.Millisecond
			}
			answer := tc.answer
			if answer == nil {
				answer = func(context.Context, *aggregator.Job) (string, error) { t.Error("runner called"); return "", nil }
			}
			srv, url := startTest(t, cfg, &scripted{answer: answer})
			g := play(t, url, tc.send...)
			if !reflect.DeepEqual(g.summary(), tc.want) || g.close != tc.close {
				t.Errorf("got %v close %d\nwant %v close %d\nraw %v", g.summary(), g.close, tc.want, tc.close, g.raw)
			}
			checkOrder(t, g)
			waitStats(t, srv)
		})
	}
}

// checkOrder: per task PENDING, SENDINGs, then exactly one end; ids unique.
func checkOrder(t *testing.T, g got) {
	t.Helper()
	last := map[float64]Status{}
	for _, m := range g.msgs {
		if m["_task"] != string(TaskItems) {
			continue
		}
		id := m["_id"].(float64)
		st := Status(m["_status"].(string))
		prev := last[id]
		ok := (st == StatusPending && prev == "") ||
			(st == StatusSending && (prev == StatusPending || prev == StatusSending)) ||
			((st == StatusSuccess || st == StatusError) && (prev == StatusPending || prev == StatusSending))
		if !ok {
			t.Errorf("task %v: %s after %q", id, st, prev)
		}
		last[id] = st
	}
}

// waitStats waits until the session is counted as finished with no task pending.
func waitStats(t *testing.T, srv *Server) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		s := srv.Stats().Snapshot()
		if s.SessionAlive == 0 && s.TaskPending == 0 {
			if s.SessionTotal != s.SessionAlive+s.SessionFinished || s.TaskTotal != s.TaskPending+s.TaskSucceeded+s.TaskFailed {
				t.Errorf("stats invariants broken: %+v", s)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats never settled: %+v", s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMessageFields(t *testing.T) {
	answer := func(_ context.Context, j *aggregator.Job) (string, error) {
		if j.Kind == aggregator.Suppliers {
			if string(j.Input) != `{"code":"c1","brand":"b1","apikey":"k","analog":1,"params":{"code":"c1","brand":"b1","apikey":"k","analog":1}}` {
				return "", fmt.Errorf("suppliers input %s", j.Input)
			}
			return `{"suppliers":[{"class":"x","info":{"foo":"bar"},"z":1}]}`, nil
		}
		if string(j.Input) != `{"class":"x","info":{"foo":"bar"},"z":1}` {
			return "", fmt.Errorf("items input %s", j.Input)
		}
		return "{\"items\":[{\"zeta\":1,\"_id\":\"theirs\",\"alpha\":\"bad \xff utf8\"}],\"suppliers\":[{\"class\":\"e\"}]}", nil
	}
	_, url := startTest(t, testConfig(), &scripted{answer: func(ctx context.Context, j *aggregator.Job) (string, error) {
		if j.Class == "e" {
			return "", aggregator.Errorf(aggregator.EScriptError, "failed")
		}
		return answer(ctx, j)
	}})
	g := play(t, url, req)
	if len(g.raw) != 5 {
		t.Fatalf("got %d messages: %v", len(g.raw), g.raw)
	}
	id := int(g.msgs[0]["_id"].(float64))
	wantPending := fmt.Sprintf(`{"_session":"1","_task":"ITEMS","_id":%d,"_status":"PENDING","_info":{"foo":"bar"}}`, id)
	if g.raw[0] != wantPending {
		t.Errorf("PENDING\n got %s\nwant %s", g.raw[0], wantPending)
	}
	// The item's own fields first, in its order, then ours; ours win; bad UTF-8 replaced.
	wantSending := fmt.Sprintf(`{"zeta":1,"alpha":"bad � utf8","_session":"1","_task":"ITEMS","_id":%d,"_status":"SENDING","_info":{"foo":"bar"}}`, id)
	if g.raw[1] != wantSending {
		t.Errorf("SENDING\n got %s\nwant %s", g.raw[1], wantSending)
	}
	wantErr := fmt.Sprintf(`{"_session":"1","_task":"ITEMS","_id":%d,"_status":"ERROR","_error":"E_SCRIPT_ERROR","_params":{"code":"c1","brand":"b1","analog":1}}`, id+1)
	found := false
	for _, r := range g.raw {
		if r == wantErr {
			found = true
		}
	}
	if !found {
		t.Errorf("no %s in %v", wantErr, g.raw)
	}
}

func TestQueuedTaskExpires(t *testing.T) {
	cfg := testConfig()
	cfg.Capacity, cfg.SessionLimit, cfg.ScriptTimeout = 1, 1, 300*time.Millisecond
	release := make(chan struct{})
	_, url := startTest(t, cfg, &scripted{answer: func(ctx context.Context, j *aggregator.Job) (string, error) {
		if j.Kind == aggregator.Suppliers {
			return supplierList("busy", "waits"), nil
		}
		<-release // holds the only slot until the browser saw the other task cancelled
		return "", aggregator.Errorf(aggregator.EScriptTimeout, "killed")
	}})
	var once sync.Once
	g := playUntil(t, url, func(m map[string]any) {
		if m["_error"] == string(aggregator.EScriptCancelled) {
			once.Do(func() { close(release) })
		}
	}, req)
	want := []string{"ITEMS ERROR E_SCRIPT_CANCELLED", "ITEMS ERROR E_SCRIPT_TIMEOUT", "ITEMS PENDING", "ITEMS PENDING"}
	if !reflect.DeepEqual(g.summary(), want) {
		t.Errorf("got %v want %v", g.summary(), want)
	}
}

func TestSessionTaskLimit(t *testing.T) {
	cfg := testConfig()
	cfg.MaxSessionTasks = 2
	_, url := startTest(t, cfg, &scripted{answer: func(_ context.Context, j *aggregator.Job) (string, error) {
		if j.Kind == aggregator.Suppliers {
			return supplierList("a", "b", "c"), nil
		}
		return `{"items":[]}`, nil
	}})
	g := play(t, url, req)
	want := []string{"ITEMS ERROR E_SCRIPT_CANCELLED", "ITEMS PENDING", "ITEMS PENDING", "ITEMS PENDING", "ITEMS SUCCESS", "ITEMS SUCCESS"}
	if !reflect.DeepEqual(g.summary(), want) {
		t.Errorf("got %v want %v", g.summary(), want)
	}
}

func TestMaxSessions(t *testing.T) {
	cfg := testConfig()
	cfg.MaxSessions = 1
	release := make(chan struct{})
	_, url := startTest(t, cfg, &scripted{answer: func(context.Context, *aggregator.Job) (string, error) {
		<-release
		return `{"suppliers":[]}`, nil
	}})
	c, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.WriteMessage(websocket.TextMessage, []byte(req))
	_, resp, err := websocket.DefaultDialer.Dial(url, nil)
	if err == nil || resp == nil || resp.StatusCode != 503 {
		t.Fatalf("second session: err %v resp %v, want HTTP 503", err, resp)
	}
	close(release)
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 59 * time.Second: "59s", 34*time.Minute + 45*time.Second: "34m 45s",
		time.Hour + 2*time.Minute + 3*time.Second: "1h 2m 3s", 26 * time.Hour: "1d 2h 0m 0s",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("%v: got %q want %q", d, got, want)
		}
	}
}

// TestPanicsBecomeUnknown: a bug in a runner ends its task with E_UNKNOWN,
// and the server goes on serving.
func TestPanicsBecomeUnknown(t *testing.T) {
	srv, url := startTest(t, testConfig(), &scripted{answer: func(_ context.Context, j *aggregator.Job) (string, error) {
		if j.Kind == aggregator.Suppliers {
			return supplierList("bug", "fine"), nil
		}
		if j.Class == "bug" {
			panic("runner bug")
		}
		return `{"items":[]}`, nil
	}})
	g := play(t, url, req)
	want := []string{"ITEMS ERROR E_UNKNOWN", "ITEMS PENDING", "ITEMS PENDING", "ITEMS SUCCESS"}
	if !reflect.DeepEqual(g.summary(), want) || g.close != 1000 {
		t.Errorf("got %v close %d, want %v close 1000", g.summary(), g.close, want)
	}
	waitStats(t, srv)
}

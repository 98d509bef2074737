package server

import (
	"context"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/theaspect/aggregator"
)

// TestEndingsCountOpenTasks: a session that ends as a whole counts each
// task still open once, with the outcome its ending leaves (SPEC §4):
// E_SESSION_TIMEOUT on a timeout, SHUTDOWN when the server stops, and the
// session under its ending's reason.
func TestEndingsCountOpenTasks(t *testing.T) {
	hang := &scripted{answer: func(ctx context.Context, j *aggregator.Job) (string, error) {
		if j.Kind == aggregator.Suppliers {
			return supplierList("a", "b"), nil
		}
		<-ctx.Done()
		return "", aggregator.Errorf(aggregator.EScriptTimeout, "never answered")
	}}
	cfg := testConfig()
	cfg.SessionTimeout = 300 * time.Millisecond
	srv, url := startTest(t, cfg, hang)
	if g := play(t, url, req); g.close != websocket.CloseInternalServerErr {
		t.Fatalf("timed-out session closed with %d, want 1011", g.close)
	}
	if n, s := counted(t, srv, "aggregator_tasks_total", "items", string(aggregator.ESessionTimeout)),
		counted(t, srv, "aggregator_sessions_ended_total", string(EndTimeout)); n != 2 || s != 1 {
		t.Errorf("timeout: %v items tasks counted %s and %v sessions %q; want 2 and 1", n, aggregator.ESessionTimeout, s, EndTimeout)
	}

	srv, url = startTest(t, testConfig(), hang)
	c, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WriteMessage(websocket.TextMessage, []byte(req)); err != nil {
		t.Fatal(err)
	}
	for pending := 0; pending < 2; pending++ { // both items tasks are open
		if _, _, err := c.ReadMessage(); err != nil {
			t.Fatal(err)
		}
	}
	srv.Shutdown(context.Background())
	if n, s := counted(t, srv, "aggregator_tasks_total", "items", string(OutcomeShutdown)),
		counted(t, srv, "aggregator_sessions_ended_total", string(EndShutdown)); n != 2 || s != 1 {
		t.Errorf("shutdown: %v items tasks counted %s and %v sessions %q; want 2 and 1", n, OutcomeShutdown, s, EndShutdown)
	}
	if snap := srv.Stats().Snapshot(); snap.TaskPending != 0 || snap.TaskFailed != 2 {
		t.Errorf("shutdown: /stats %+v, want no task pending and the 2 items tasks failed", snap)
	}
}

// counted reads the counter name{labels...} (label values in order) from
// the server's registry; 0 when it has no such series.
func counted(t *testing.T, srv *Server, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := srv.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for i, l := range m.GetLabel() {
				if i >= len(labels) || l.GetValue() != labels[i] {
					continue series
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

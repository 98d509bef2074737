package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/theaspect/aggregator"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// health reads /health: its status code and answer.
func health(t *testing.T, base string) (int, drainHealth) {
	t.Helper()
	resp, err := http.Get(base + "/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h drainHealth
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, h
}

// startObserved is startTest with the server's log lines kept, and the
// plain HTTP base URL.
func startObserved(t *testing.T, cfg Config, r PHP) (*Server, string, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zap.InfoLevel)
	srv := New(cfg, r, zap.New(core), prometheus.NewRegistry())
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		srv.Shutdown(context.Background())
		hs.Close()
	})
	return srv, hs.URL, logs
}

// TestDrain: a draining server answers new upgrades 503 before the upgrade
// and /health 503 "draining" with the sessions still open; the session in
// flight goes on to its normal end (close 1000, every message); then
// "drained" is logged once and /health says 0; Resume takes sessions again.
func TestDrain(t *testing.T) {
	release := make(chan struct{})
	r := &scripted{answer: func(_ context.Context, j *aggregator.Job) (string, error) {
		if j.Kind == aggregator.Suppliers {
			return supplierList("slow"), nil
		}
		<-release
		return `{"items":[{"code":"a"}]}`, nil
	}}
	srv, base, logs := startObserved(t, testConfig(), r)
	ws := "ws" + strings.TrimPrefix(base, "http") + "/ws"

	var running got
	done := make(chan struct{})
	started := make(chan struct{}, 1)
	go func() {
		defer close(done)
		running = playUntil(t, ws, func(m map[string]any) {
			if m["_status"] == "PENDING" {
				started <- struct{}{}
			}
		}, req)
	}()
	<-started
	srv.Drain()
	srv.Drain() // again: nothing changes

	if code, h := health(t, base); code != 503 || h.Status != healthDraining || h.Sessions != 1 {
		t.Errorf("/health while draining: %d %+v, want 503 draining with 1 session", code, h)
	}
	for _, path := range []string{"/ws", "/echo"} {
		_, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+path, nil)
		if err == nil || resp == nil || resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s while draining: err %v resp %v, want 503 with Retry-After before the upgrade", path, err, resp)
		}
	}

	close(release)
	<-done
	if running.close != 1000 || strings.Join(running.summary(), ",") != "ITEMS PENDING,ITEMS SENDING,ITEMS SUCCESS" {
		t.Errorf("the session in flight got %v, close %d; want its whole search and 1000", running.summary(), running.close)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if code, h := health(t, base); code == 503 && h.Sessions == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("/health never said 0 sessions")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := logs.FilterMessageSnippet("drained: no session left").Len(); n != 1 {
		t.Errorf(`%d "drained" lines, want 1`, n)
	}
	if n := logs.FilterMessageSnippet("already draining").Len(); n != 1 {
		t.Errorf(`%d "already draining" lines, want 1`, n)
	}

	srv.Resume()
	if code, h := health(t, base); code != 200 || h.Status != aggregator.HealthOK {
		t.Errorf("/health after Resume: %d %+v", code, h)
	}
	if g := play(t, ws, req); g.close != 1000 {
		t.Errorf("a session after Resume closed %d", g.close)
	}
}

// TestDrainRace: sessions arriving while Drain happens are either refused
// (503) or run to their end; none is cut, and once "drained" is logged no
// session is open.
func TestDrainRace(t *testing.T) {
	r := &scripted{answer: func(_ context.Context, j *aggregator.Job) (string, error) {
		if j.Kind == aggregator.Suppliers {
			return supplierList("a"), nil
		}
		time.Sleep(time.Millisecond)
		return `{"items":[]}`, nil
	}}
	srv, base, logs := startObserved(t, testConfig(), r)
	ws := "ws" + strings.TrimPrefix(base, "http") + "/ws"
	var ran, refused, broken atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, resp, err := websocket.DefaultDialer.Dial(ws, nil)
				if err != nil {
					if resp != nil && resp.StatusCode == 503 {
						refused.Add(1)
						return
					}
					broken.Add(1)
					return
				}
				_ = c.WriteMessage(websocket.TextMessage, []byte(req))
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				for {
					if _, _, err := c.ReadMessage(); err != nil {
						if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
							broken.Add(1)
						}
						break
					}
				}
				c.Close()
				ran.Add(1)
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	srv.Drain()
	wg.Wait()
	if broken.Load() != 0 || refused.Load() != 8 || ran.Load() == 0 {
		t.Errorf("ran %d, refused %d, broken %d; want some run, 8 refused, none broken", ran.Load(), refused.Load(), broken.Load())
	}
	deadline := time.Now().Add(5 * time.Second)
	for logs.FilterMessageSnippet("drained: no session left").Len() != 1 {
		if time.Now().After(deadline) {
			t.Fatal(`no "drained" line`)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if on, open := srv.Draining(); !on || open != 0 {
		t.Errorf("Draining() = %v, %d after drained", on, open)
	}
}

// coldRunner is down until up is set.
type coldRunner struct {
	scripted
	up atomic.Bool
}

func (c *coldRunner) Health() aggregator.Health {
	if c.up.Load() {
		return aggregator.Health{Status: aggregator.HealthOK}
	}
	return aggregator.Health{Status: aggregator.HealthDown, Reason: "no PHP worker is running yet"}
}

// TestUntilWarm: with UntilWarm a server refuses sessions (503) until its
// runner is first up, then takes them even while it is down again; without
// it, sessions are taken at once (and fail on their own, E_SCRIPT_START).
func TestUntilWarm(t *testing.T) {
	none := func(context.Context, *aggregator.Job) (string, error) { return `{"suppliers":[]}`, nil }
	r := &coldRunner{scripted: scripted{answer: none}}
	cfg := testConfig()
	cfg.UntilWarm = true
	_, base, logs := startObserved(t, cfg, r)
	ws := "ws" + strings.TrimPrefix(base, "http") + "/ws"
	if _, resp, err := websocket.DefaultDialer.Dial(ws, nil); err == nil || resp == nil || resp.StatusCode != 503 {
		t.Errorf("before PHP is up: err %v resp %v, want 503", err, resp)
	}
	r.up.Store(true)
	if g := play(t, ws, req); g.close != 1000 {
		t.Errorf("once up: close %d", g.close)
	}
	r.up.Store(false)
	if g := play(t, ws, req); g.close != 1000 {
		t.Errorf("down again after being up: close %d, want the session taken", g.close)
	}
	if n := logs.FilterMessageSnippet("PHP is up: taking sessions").Len(); n != 1 {
		t.Errorf(`%d "PHP is up" lines, want 1`, n)
	}

	_, cold := startTest(t, testConfig(), &coldRunner{scripted: scripted{answer: none}})
	if g := play(t, cold, req); g.close != 1000 {
		t.Errorf("without UntilWarm: close %d, want the session taken", g.close)
	}
}

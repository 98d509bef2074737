package integration

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// rawGet sends a GET with path exactly as given (no client-side cleaning
// of //, %6D or ..) and extra header lines, and returns the status.
func rawGet(t *testing.T, base, path string, header ...string) (int, string) {
	t.Helper()
	u, _ := url.Parse(base)
	c, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET " + path + " HTTP/1.1\r\nHost: " + u.Host + "\r\nConnection: close\r\n"
	for _, h := range header {
		req += h + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, string(body)
}

// opsPaths are the operators' endpoints and spellings that a naive
// front would let through to them.
var opsPaths = []string{"/metrics", "/%6Detrics", "//metrics", "/METRICS", "/metrics/", "/x/../metrics",
	"/workers", "/workers/", "/%77orkers", "/debug/pprof", "/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/cmdline"}

// TestOpsEndpointsGuarded: on the main port /workers, /metrics and the
// opt-in /debug/pprof/ answer a loopback client that came without proxy
// headers, and refuse (403) one that came through a proxy, whatever the
// spelling of the path; `aggregator workers` keeps working.
func TestOpsEndpointsGuarded(t *testing.T) {
	s := startServer(t, nil, "-Daggregator.ops.pprof=true", "-Daggregator.pool.executor=2")
	for _, path := range []string{"/metrics", "/workers", "/debug/pprof/", "/debug/pprof/heap?debug=1", "/health", "/stats"} {
		if code, body := rawGet(t, s.URL, path); code != 200 {
			t.Errorf("local %s: %d %.200s, want 200", path, code, body)
		}
	}
	for _, hdr := range []string{"X-Forwarded-For: 203.0.113.9", "X-Real-IP: 203.0.113.9", "Forwarded: for=203.0.113.9", "X-Forwarded-Host: shop.example"} {
		for _, path := range opsPaths {
			code, body := rawGet(t, s.URL, path, hdr)
			// 403: the guard; 404: no such endpoint (the page's file
			// server); 307: the mux cleaning the path, to a guarded one.
			if code != 403 && code != 404 && code != 307 {
				t.Errorf("%s with %q: %d %.200s, want 403, 404 or a redirect", path, hdr, code, body)
			}
			if strings.Contains(body, "aggregator_") || strings.Contains(body, `"workers"`) || strings.Contains(body, "goroutine") {
				t.Errorf("%s with %q leaked: %.200s", path, hdr, body)
			}
		}
		// ... and the public ones still answer through a proxy.
		for _, path := range []string{"/stats", "/health", "/"} {
			if code, _ := rawGet(t, s.URL, path, hdr); code != 200 {
				t.Errorf("%s with %q: %d, want 200", path, hdr, code)
			}
		}
	}
	if v := s.metric(t, "aggregator_ops_refused_total"); v == "" || v == "0" {
		t.Errorf("aggregator_ops_refused_total = %q, want the refusals counted", v)
	}
	u, _ := url.Parse(s.URL)
	if out, err := exec.Command(binary, "-Dserver.port="+u.Port(), "workers").CombinedOutput(); err != nil || !strings.Contains(string(out), "worker mode: ") {
		t.Errorf("aggregator workers: %v\n%s", err, out)
	}
}

var opsListenRE = regexp.MustCompile(`ops listening\s+\{"addr": "([0-9.:]+)"`)

// TestOpsListener: aggregator.ops.port opens the operators' listener, which
// serves /metrics, /workers, /health, /stats and pprof and nothing public;
// `aggregator workers` uses it.
func TestOpsListener(t *testing.T) {
	s := startServer(t, nil, "-Daggregator.ops.port=0", "-Daggregator.ops.pprof=true", "-Daggregator.pool.executor=2")
	m := opsListenRE.FindStringSubmatch(s.Stderr())
	if m == nil {
		t.Fatalf("no ops listening line:\n%s", s.Stderr())
	}
	ops := "http://" + m[1]
	for path, want := range map[string]int{"/metrics": 200, "/workers": 200, "/health": 200, "/stats": 200,
		"/debug/pprof/": 200, "/": 404, "/ws": 404, "/app.js": 404} {
		if code, _ := rawGet(t, ops, path); code != want {
			t.Errorf("ops %s: %d, want %d", path, code, want)
		}
	}
	// No guard there: the address is the guard.
	if code, _ := rawGet(t, ops, "/metrics", "X-Forwarded-For: 203.0.113.9"); code != 200 {
		t.Errorf("ops /metrics with X-Forwarded-For: %d, want 200", code)
	}
	if v := s.metric(t, `aggregator_connections_open{listener="ops"}`); v == "" {
		t.Error("the ops listener's connections are not counted")
	}
	_, port, _ := net.SplitHostPort(m[1])
	// server.port points nowhere: the command must use the ops port.
	out, err := exec.Command(binary, "-Dserver.port=1", "-Daggregator.ops.port="+port, "workers").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "worker mode: ") {
		t.Errorf("aggregator workers through the ops port: %v\n%s", err, out)
	}
}

// TestNginxRefusesOps: through real nginx with the shipped rules, the
// operators' endpoints are refused in every spelling, pprof included,
// while the public paths (the page and its files, /stats, /health, /ws)
// work.
func TestNginxRefusesOps(t *testing.T) {
	s := startServer(t, nil, "-Daggregator.ops.pprof=true", "-Daggregator.pool.executor=2")
	front := startNginx(t, s)
	for _, path := range append(opsPaths, "/debug/pprof/profile?seconds=1", "/echo/../metrics", "/ws/../workers", "/app.js/../metrics") {
		code, body := rawGet(t, front.URL, path)
		if code != 404 && code != 403 && code != 400 {
			t.Errorf("%s through nginx: %d %.200s, want it refused", path, code, body)
		}
		if strings.Contains(body, "aggregator_") || strings.Contains(body, `"workers"`) || strings.Contains(body, "goroutine") {
			t.Errorf("%s through nginx leaked: %.200s", path, body)
		}
	}
	for _, path := range []string{"/", "/app.js", "/app.css", "/vendor/uplot/uPlot.iife.min.js", "/vendor/uplot/uPlot.min.css",
		"/stats", "/health"} {
		if code, body := rawGet(t, front.URL, path); code != 200 {
			t.Errorf("%s through nginx: %d %.200s, want 200", path, code, body)
		}
	}
	if r := front.session(t, 20*time.Second, request("normal")); r.CloseCode != 1000 || r.Count("SENDING") != 9 {
		t.Errorf("search through nginx: close %d, %d SENDING", r.CloseCode, r.Count("SENDING"))
	}
	c, _, err := websocket.DefaultDialer.Dial(front.WS+"/echo", nil)
	if err != nil {
		t.Fatalf("/echo through nginx: %v", err)
	}
	defer c.Close()
	_ = c.WriteMessage(websocket.TextMessage, []byte("hi"))
	if _, m, err := c.ReadMessage(); err != nil || string(m) != "hi" {
		t.Errorf("echo through nginx: %q %v", m, err)
	}
	if v := s.metric(t, "aggregator_ops_refused_total"); v != "0" {
		t.Logf("nginx let %s ops requests reach the aggregator (refused there)", v)
	}
}

package integration

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestNginxTwoInstances puts real nginx, configured with the shipped
// location rules, in front of two aggregators: every session through it
// succeeds and both instances serve some.
func TestNginxTwoInstances(t *testing.T) {
	a := startServer(t, nil, "-Daggregator.pool.executor=4")
	b := startServer(t, nil, "-Daggregator.pool.executor=4")
	front := startNginx(t, a, b)

	var wg sync.WaitGroup
	for i := 0; i < 24; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			code := []string{"normal", "analog", "emptyItems"}[i%3]
			r := front.session(t, 20*time.Second, request(code))
			checkResult(t, code, r, scenarios[code])
		}(i)
	}
	wg.Wait()
	sa, sb := a.stats(t), b.stats(t)
	if sa.SessionTotal == 0 || sb.SessionTotal == 0 || sa.SessionTotal+sb.SessionTotal != 24 {
		t.Errorf("sessions per instance: %d and %d, want both > 0, 24 in all", sa.SessionTotal, sb.SessionTotal)
	}

	// The page and stats come through (the operators' endpoints do not:
	// TestNginxRefusesOps); a foreign origin is refused.
	for _, path := range []string{"/", "/stats"} {
		resp, err := http.Get(front.URL + path)
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("GET %s through nginx: %v %v", path, err, resp)
		} else {
			resp.Body.Close()
		}
	}
	hdr := http.Header{"Origin": {"http://evil.example"}}
	if _, resp, err := websocket.DefaultDialer.Dial(front.WS+"/ws", hdr); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Errorf("foreign origin through nginx: err %v resp %v, want 403", err, resp)
	}
	hdr = http.Header{"Origin": {front.URL}}
	c, _, err := websocket.DefaultDialer.Dial(front.WS+"/ws", hdr)
	if err != nil {
		t.Fatalf("same-origin websocket through nginx: %v", err)
	}
	c.Close()

	// The instances log the browser's address from X-Forwarded-For (nginx is a trusted proxy).
	eventually(t, 3*time.Second, func() string {
		logs := a.Stderr() + b.Stderr()
		if !strings.Contains(logs, `"remote": "127.0.0.1"`) {
			return "no session line with the forwarded client address"
		}
		return ""
	})
}

// startNginx runs real nginx, configured with the shipped location rules
// (deploy/nginx-test.conf.tmpl including deploy/nginx/aggregator-locations.conf),
// in front of the servers, and returns it as a Server to talk to.
func startNginx(t *testing.T, upstreams ...*Server) *Server {
	t.Helper()
	var lines []string
	for _, s := range upstreams {
		lines = append(lines, "server "+strings.TrimPrefix(s.URL, "http://")+";")
	}
	front, _ := startNginxUpstream(t, lines)
	return front
}

// startNginxUpstream is startNginx with the upstream's server lines given
// whole (their max_fails and fail_timeout too); it also returns nginx's
// directory, which holds access.log.
func startNginxUpstream(t *testing.T, lines []string) (front *Server, dir string) {
	t.Helper()
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/nginx"); err2 != nil {
			t.Fatal("nginx is not installed (make test installs it)")
		}
		nginx = "/usr/sbin/nginx"
	}
	dir = t.TempDir()
	port := freePort(t)
	tmpl, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "nginx-test.conf.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.NewReplacer(
		"{{PREFIX}}", dir,
		"{{PORT}}", fmt.Sprint(port),
		"{{UPSTREAMS}}", strings.Join(lines, "\n        "),
		"{{LOCATIONS}}", filepath.Join(repoRoot, "deploy", "nginx", "aggregator-locations.conf"),
	).Replace(string(tmpl))
	confFile := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginx, "-p", dir, "-c", confFile, "-e", filepath.Join(dir, "error.log"))
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	front = &Server{URL: fmt.Sprintf("http://127.0.0.1:%d", port), WS: fmt.Sprintf("ws://127.0.0.1:%d", port)}
	eventually(t, 10*time.Second, func() string {
		resp, err := http.Get(front.URL + "/health")
		if err != nil {
			return fmt.Sprintf("nginx not up: %v\n%s", err, out)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Sprintf("health through nginx: %d", resp.StatusCode)
		}
		return ""
	})
	return front, dir
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

package server

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// TestListenerRefusesOverTheCap: with the cap full, every further
// connection gets the 503, also past maxRefusing silent ones at once (the
// accept loop then refuses them itself), and each is counted until closed.
func TestListenerRefusesOverTheCap(t *testing.T) {
	srv := New(testConfig(), &scripted{}, zap.NewNop(), prometheus.NewRegistry())
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := srv.Listen(inner, "main", 2, "test.cap")
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})}
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	addr := inner.Addr().String()

	var held []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	for start := time.Now(); l.served.Load() < 2; time.Sleep(time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatal("the two connections were not taken in")
		}
	}
	// Silent clients, more than maxRefusing: none sends a request.
	n := maxRefusing + 8
	var wg sync.WaitGroup
	answers := make(chan string, n)
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				answers <- err.Error()
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			answers <- resp.Status + " " + resp.Header.Get("Retry-After")
		}()
	}
	wg.Wait()
	close(answers)
	for a := range answers {
		if a != "503 Service Unavailable 1" {
			t.Errorf("a connection over the cap got %q, want 503 with Retry-After", a)
		}
	}
	for _, c := range held {
		c.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for l.open.Load() != 0 || l.served.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections counted open, %d served, after every one closed", l.open.Load(), l.served.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

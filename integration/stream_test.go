package integration

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestStreamCallsGoThroughTheAggregator: a translator written for PHP's
// http:// wrapper (file_get_contents with a stream context, unchanged)
// runs in worker mode with its calls made by the aggregator (SPEC §17):
// one PHP process holds 4 jobs at once, /workers lists each job's call to
// the supplier while it waits, the supplier gets the context's headers,
// and the session then gets every item.
func TestStreamCallsGoThroughTheAggregator(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var mu sync.Mutex
	var keys, agents []string
	supplier := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		keys, agents = append(keys, r.Header.Get("X-Api-Key")), append(agents, r.Header.Get("User-Agent"))
		mu.Unlock()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		fmt.Fprintf(w, "part of %s\nanother part\n", r.URL.Query().Get("class"))
	}))
	defer supplier.Close()
	s := startServer(t, []string{"FETCH_URL=" + supplier.URL + "/parts"}, "-Daggregator.pool.executor=1",
		"-Daggregator.pool.concurrency=8", "-Daggregator.worker.handlers=integration/testdata/stream_handlers.php")
	c := s.dial(t, "/ws")
	defer c.Close()
	if err := c.WriteMessage(websocket.TextMessage, []byte(request("4"))); err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(supplier.URL, "http://")
	eventually(t, 10*time.Second, func() string {
		ws := s.workers(t)
		waiting := 0
		for _, w := range ws {
			for _, j := range w.Running {
				if len(j.Calls) == 1 && j.Calls[0].Host == host {
					waiting++
				}
			}
		}
		if len(ws) != 1 || waiting != 4 {
			return fmt.Sprintf("want one PHP process with 4 jobs each waiting for %s, got %+v", host, ws)
		}
		return ""
	})
	close(release)
	r := readAll(t, c, 10*time.Second)
	if r.CloseCode != 1000 || r.Count("SENDING") != 8 || r.Count("SUCCESS") != 4 {
		t.Errorf("close %d, %d items, %d SUCCESS, errors %v", r.CloseCode, r.Count("SENDING"), r.Count("SUCCESS"), r.Errors())
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range keys {
		if keys[i] != "k-legacy" || agents[i] != "aggregator-fetch/1" {
			t.Errorf("call %d: X-Api-Key %q, User-Agent %q; want the context's key, sent by the aggregator", i, keys[i], agents[i])
		}
	}
	if len(keys) != 4 {
		t.Errorf("%d calls reached the supplier, want 4", len(keys))
	}
}

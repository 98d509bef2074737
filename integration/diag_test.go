package integration

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestWorkersCommand: /workers and `aggregator workers` show a busy PHP
// process with the task it runs, then idle again after — in both modes.
func TestWorkersCommand(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, nil, "-Daggregator.pool.mode="+mode, "-Daggregator.pool.executor=3",
				"-Daggregator.timeout.script=2")
			u, _ := url.Parse(s.URL)
			workers := func() string {
				out, err := exec.Command(binary, "-Dserver.port="+u.Port(), "workers").CombinedOutput()
				if err != nil {
					t.Fatalf("aggregator workers: %v\n%s", err, out)
				}
				return string(out)
			}
			c := s.dial(t, "/ws")
			defer c.Close()
			if err := c.WriteMessage(websocket.TextMessage, []byte(request("itemsTimeout"))); err != nil {
				t.Fatal(err)
			}
			var session string
			_, first, err := c.ReadMessage() // the first PENDING names the session
			if err != nil {
				t.Fatal(err)
			}
			session = strings.Split(strings.SplitN(string(first), `"_session":"`, 2)[1], `"`)[0]
			eventually(t, 3*time.Second, func() string {
				out := workers()
				if !strings.Contains(out, "3 busy") {
					return "want 3 busy:\n" + out
				}
				for _, line := range strings.Split(out, "\n") {
					if strings.Contains(line, "busy") && strings.Contains(line, "timeout-") {
						f := strings.Fields(line)
						if len(f) < 9 || f[5] != session {
							return fmt.Sprintf("busy row %q does not name session %s", line, session)
						}
						return ""
					}
				}
				return "no busy row with its supplier:\n" + out
			})
			readAll(t, c, 10*time.Second)
			eventually(t, 3*time.Second, func() string {
				out := workers()
				if !strings.Contains(out, "0 busy") {
					return "want 0 busy after the session:\n" + out
				}
				return ""
			})
		})
	}
}

// TestWorkersShowCalls: with fetch(), /workers and `aggregator workers`
// show one PHP process running several jobs (4: the session limit of a
// capacity of 8), each waiting for its call, with the host it waits for;
// the session then gets every item.
func TestWorkersShowCalls(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	supplier := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		fmt.Fprintf(w, "part of %s\nanother part\n", r.URL.Query().Get("class"))
	}))
	defer supplier.Close()
	s := startServer(t, []string{"FETCH_URL=" + supplier.URL + "/parts"}, "-Daggregator.pool.executor=1",
		"-Daggregator.pool.concurrency=8", "-Daggregator.worker.handlers=integration/testdata/fetch_handlers.php")
	u, _ := url.Parse(s.URL)
	c := s.dial(t, "/ws")
	defer c.Close()
	if err := c.WriteMessage(websocket.TextMessage, []byte(request("4"))); err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(supplier.URL, "http://")
	eventually(t, 10*time.Second, func() string {
		out, err := exec.Command(binary, "-Dserver.port="+u.Port(), "workers").CombinedOutput()
		if err != nil {
			t.Fatalf("aggregator workers: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "1 PHP processes, 1 busy, 4 jobs in flight") || strings.Count(string(out), "GET "+host) != 4 {
			return "want one process with 4 jobs each waiting for GET " + host + ":\n" + string(out)
		}
		return ""
	})
	close(release)
	r := readAll(t, c, 10*time.Second)
	if r.CloseCode != 1000 || r.Count("SENDING") != 8 || r.Count("SUCCESS") != 4 {
		t.Errorf("close %d, %d items, %d SUCCESS, errors %v", r.CloseCode, r.Count("SENDING"), r.Count("SUCCESS"), r.Errors())
	}
}

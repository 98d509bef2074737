package integration

import (
	"fmt"
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

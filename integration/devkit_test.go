package integration

// The PHP developer's kit: `aggregator call`, watch mode, the example
// translator and errors that explain themselves in the log.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// dkCallResult is what one `aggregator call` printed.
type dkCallResult struct {
	exit           int
	stdout, stderr string
}

func (r dkCallResult) String() string {
	return fmt.Sprintf("exit %d\n--- stdout:\n%s--- stderr:\n%s", r.exit, r.stdout, r.stderr)
}

// dkCall runs the binary with args (-D overrides, then `call ...`) in the
// repository, with the demo's delay short.
func dkCall(t *testing.T, env []string, args ...string) dkCallResult {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = repoRoot
	cmd.Env = append(append(os.Environ(), "DEMO_DELAY_MS=20"), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := dkCallResult{stdout: stdout.String(), stderr: stderr.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("aggregator %v: %v", args, err)
		}
		r.exit = ee.ExitCode()
	}
	return r
}

// TestDevkitCall: `aggregator call` runs one job in each mode and prints what
// the browser would get, or its error code, with exit codes 0, 1 and 2.
func TestDevkitCall(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			m := "-Daggregator.pool.mode=" + mode
			r := dkCall(t, nil, m, "call", "suppliers", request("normal"))
			if r.exit != 0 || !strings.Contains(r.stdout, "result:    3 suppliers\n") {
				t.Fatalf("call suppliers normal: want exit 0 and 3 suppliers:\n%s", r)
			}
			for i := 1; i <= 3; i++ {
				if !strings.Contains(r.stdout, fmt.Sprintf(`  [%d] {"class":"normal-%d",`, i, i)) {
					t.Errorf("supplier %d not listed:\n%s", i, r)
				}
			}
			if !strings.Contains(r.stdout, `"params":{"code":"normal","brand":"ctr","apikey":"111111","analog":1}`) {
				t.Errorf("the input lacks the request under params:\n%s", r)
			}

			r = dkCall(t, nil, m, "call", "items", `{"class":"normal-1","code":"normal","brand":"ctr","info":{"a":1}}`)
			if r.exit != 0 || !strings.Contains(r.stdout, "result:    3 items, 0 nested suppliers") ||
				!strings.Contains(r.stdout, `  _info {"a":1}`) || !strings.Contains(r.stdout, `"name":"Demo part 1 from normal-1"`) {
				t.Errorf("call items normal-1:\n%s", r)
			}
			r = dkCall(t, nil, m, "call", "items", `{"class":"analog-3","code":"analog"}`)
			if r.exit != 0 || !strings.Contains(r.stdout, "3 items, 2 nested suppliers") {
				t.Errorf("call items analog-3:\n%s", r)
			}

			// The handler throws: E_SCRIPT_ERROR, the exception's message, file and trace.
			r = dkCall(t, nil, m, "call", "items", `{"class":"error-1","code":"itemsError"}`)
			if r.exit != 1 || !strings.Contains(r.stdout, "error:     E_SCRIPT_ERROR\n") {
				t.Errorf("call items error-1: want exit 1 and E_SCRIPT_ERROR:\n%s", r)
			}
			if !strings.Contains(r.stdout, "exception: RuntimeException: demo: the items script failed for supplier error-1\n") ||
				!regexp.MustCompile(`at \S+/script/lib/Demo\.php:\d+\n`).MatchString(r.stdout) ||
				!strings.Contains(r.stdout, "#0 ") {
				t.Errorf("call items error-1: the exception with file, line and trace is missing:\n%s", r)
			}
			if !strings.Contains(r.stderr, "demo: the items script failed for supplier error-1") {
				t.Errorf("call items error-1: PHP's stderr is not in the log on stderr:\n%s", r)
			}

			for _, c := range []struct{ class, code string }{{"badjson-1", "E_ITEMS_JSON"}, {"badresponse-1", "E_ITEMS_RESPONSE"}} {
				r = dkCall(t, nil, m, "call", "items", fmt.Sprintf(`{"class":%q}`, c.class))
				if r.exit != 1 || !strings.Contains(r.stdout, "error:     "+c.code+"\n") {
					t.Errorf("call items %s: want exit 1 and %s:\n%s", c.class, c.code, r)
				}
			}
			// r is badresponse-1's answer (a slice keeps the order; a map did not).
			if !strings.Contains(r.stdout, `reason:    output has no "items" field`) {
				t.Errorf("badresponse: the reason does not name the field:\n%s", r)
			}
			r = dkCall(t, nil, m, "call", "suppliers", request("suppliersNotJson"))
			if r.exit != 1 || !strings.Contains(r.stdout, "output:    Not a JSON\n") || !strings.Contains(r.stdout, "E_SUPPLIERS_JSON") {
				t.Errorf("call suppliers suppliersNotJson:\n%s", r)
			}
			r = dkCall(t, nil, m, "-Daggregator.timeout.script=0.5", "call", "items", `{"class":"timeout-1"}`)
			if r.exit != 1 || !strings.Contains(r.stdout, "E_SCRIPT_TIMEOUT") {
				t.Errorf("call items timeout-1 with a 0.5 s script time:\n%s", r)
			}

			// The browser's request is checked as the server does; PHP is not called.
			r = dkCall(t, nil, m, "call", "suppliers", `{"code":"normal"}`)
			if r.exit != 1 || !strings.Contains(r.stdout, "E_ILLEGAL_REQUEST") {
				t.Errorf("call suppliers without brand: want E_ILLEGAL_REQUEST:\n%s", r)
			}
			r = dkCall(t, nil, m, "call", "suppliers", `not json`)
			if r.exit != 1 || !strings.Contains(r.stdout, "E_REQUEST_JSON") {
				t.Errorf("call suppliers 'not json': want E_REQUEST_JSON:\n%s", r)
			}
			for _, args := range [][]string{{"call"}, {"call", "items"}, {"call", "other", "{}"}, {"call", "items", "[1]"}} {
				if r = dkCall(t, nil, append([]string{m}, args...)...); r.exit != 2 {
					t.Errorf("%v: want exit 2:\n%s", args, r)
				}
			}
		})
	}
}

// dkCallJSON is the --json report.
type dkCallJSON struct {
	Output     string            `json:"output"`
	Code       string            `json:"code"`
	Error      string            `json:"error"`
	Items      []json.RawMessage `json:"items"`
	Suppliers  []json.RawMessage `json:"suppliers"`
	DurationMS float64           `json:"duration_ms"`
	Stderr     []string          `json:"stderr"`
	Exception  *struct {
		Class, Message, File, Trace string
		Line                        int
	} `json:"exception"`
}

// TestDevkitCallJSON: --json prints one JSON object a script can read.
func TestDevkitCallJSON(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			m := "-Daggregator.pool.mode=" + mode
			decode := func(r dkCallResult) dkCallJSON {
				t.Helper()
				var v dkCallJSON
				if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || strings.Count(strings.TrimSpace(r.stdout), "\n") != 0 {
					t.Fatalf("--json output is not one JSON object (%v):\n%s", err, r)
				}
				return v
			}
			r := dkCall(t, nil, m, "call", "--json", "items", `{"class":"analog-3","code":"analog","brand":"ctr"}`)
			v := decode(r)
			if r.exit != 0 || v.Code != "" || len(v.Items) != 3 || len(v.Suppliers) != 2 || v.DurationMS <= 0 || v.Stderr == nil {
				t.Errorf("--json analog-3: want exit 0, 3 items, 2 suppliers, a duration, a stderr array:\n%s", r)
			}
			var item struct{ Code, Name string }
			if len(v.Items) > 0 {
				_ = json.Unmarshal(v.Items[0], &item)
			}
			if item.Code != "analog-3-1" || !strings.Contains(v.Output, `"items":[`) {
				t.Errorf("--json analog-3: first item %+v, output %q", item, v.Output)
			}

			r = dkCall(t, nil, m, "call", "suppliers", "--json", request("normal"))
			if v = decode(r); r.exit != 0 || len(v.Suppliers) != 3 || v.Items == nil {
				t.Errorf("--json suppliers normal:\n%s", r)
			}

			r = dkCall(t, nil, m, "call", "--json", "items", `{"class":"error-1"}`)
			v = decode(r)
			if r.exit != 1 || v.Code != "E_SCRIPT_ERROR" || v.Exception == nil {
				t.Fatalf("--json error-1: want E_SCRIPT_ERROR and the exception:\n%s", r)
			}
			e := v.Exception
			if e.Class != "RuntimeException" || e.Message != "demo: the items script failed for supplier error-1" ||
				!strings.HasSuffix(e.File, "/script/lib/Demo.php") || e.Line <= 0 || !strings.HasPrefix(e.Trace, "#0 ") {
				t.Errorf("--json error-1: exception %+v", e)
			}
			// The exception came as data: not also as lines of PHP's text.
			if strings.Contains(strings.Join(v.Stderr, "\n"), "demo: the items script failed") {
				t.Errorf("--json error-1: the exception is in stderr too: %q", v.Stderr)
			}
		})
	}
}

// dkStartServerIn is startServer with the server's working directory set to dir.
func dkStartServerIn(t testing.TB, dir string, env []string, args ...string) *Server {
	t.Helper()
	s := startServerIn(t, dir, env, args...)
	s.waitHealthy(t, 15*time.Second)
	return s
}

// dkCopyTree copies the files under src to dst.
func dkCopyTree(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		info, _ := d.Info()
		return os.WriteFile(target, b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// dkTrySession runs one session without failing the test (for goroutines).
func dkTrySession(s *Server, req string) (Result, error) {
	var r Result
	c, _, err := websocket.DefaultDialer.Dial(s.WS+"/ws", nil)
	if err != nil {
		return r, err
	}
	defer c.Close()
	if err := c.WriteMessage(websocket.TextMessage, []byte(req)); err != nil {
		return r, err
	}
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		_, data, err := c.ReadMessage()
		if err != nil {
			if ce, ok := err.(*websocket.CloseError); ok {
				r.CloseCode, r.CloseText = ce.Code, ce.Text
				return r, nil
			}
			return r, err
		}
		var m Msg
		if err := json.Unmarshal(data, &m); err != nil {
			return r, err
		}
		r.Msgs = append(r.Msgs, m)
	}
}

// dkNormalOK says what is wrong with a "normal" session's result, or "".
func dkNormalOK(r Result) string {
	if r.Count("PENDING") != 3 || r.Count("SENDING") != 9 || r.Count("SUCCESS") != 3 || len(r.Errors()) != 0 || r.CloseCode != 1000 {
		return fmt.Sprintf("PENDING %d SENDING %d SUCCESS %d errors %v close %d",
			r.Count("PENDING"), r.Count("SENDING"), r.Count("SUCCESS"), r.Errors(), r.CloseCode)
	}
	return ""
}

// dkNames are the items' dkNames of a session.
func dkNames(r Result) []string {
	var out []string
	for _, m := range r.Msgs {
		if m.str("_status") == "SENDING" {
			out = append(out, m.str("name"))
		}
	}
	return out
}

// TestDevkitWatch: with aggregator.pool.watch=true, saving a PHP file under
// the handlers' directory reloads the workers: new sessions see the new code
// and no session fails meanwhile. Runs on a copy of the PHP code.
func TestDevkitWatch(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, d := range []string{"src", "script"} {
		dkCopyTree(t, filepath.Join(repoRoot, d), filepath.Join(dir, d))
	}
	// worker.php, and composer.json: its autoload rules find the demo's classes.
	for _, f := range []string{"worker.php", "composer.json"} {
		b, err := os.ReadFile(filepath.Join(repoRoot, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s := dkStartServerIn(t, dir, nil, "-Daggregator.pool.watch=true", "-Daggregator.pool.executor=4")

	r := s.session(t, 20*time.Second, request("normal"))
	if msg := dkNormalOK(r); msg != "" {
		t.Fatalf("before the edit: %s", msg)
	}
	if n := dkNames(r); !strings.HasPrefix(n[0], "Demo part ") {
		t.Fatalf("before the edit: dkNames %q", n)
	}

	// Sessions keep running while the file changes and the workers reload.
	var mu sync.Mutex
	var failures []string
	sessions := 0
	stop := repeatUntilStopped(2, func() {
		r, err := dkTrySession(s, request("normal"))
		mu.Lock()
		defer mu.Unlock()
		sessions++
		if err != nil {
			failures = append(failures, err.Error())
		} else if msg := dkNormalOK(r); msg != "" {
			failures = append(failures, msg)
		}
	})

	time.Sleep(300 * time.Millisecond)
	demo := filepath.Join(dir, "script", "lib", "Demo.php")
	src, err := os.ReadFile(demo)
	if err != nil {
		t.Fatal(err)
	}
	edited := bytes.Replace(src, []byte(`"Demo part $index from $class"`), []byte(`"Edited part $index from $class"`), 1)
	if bytes.Equal(edited, src) {
		t.Fatal("Demo.php has no item name to edit")
	}
	if err := os.WriteFile(demo, edited, 0o644); err != nil { // in place, as most editors save
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() string {
		r := s.session(t, 20*time.Second, request("normal"))
		if msg := dkNormalOK(r); msg != "" {
			return "after the edit: " + msg
		}
		if n := dkNames(r); !strings.HasPrefix(n[0], "Edited part ") || !strings.HasPrefix(n[8], "Edited part ") {
			return fmt.Sprintf("the edit is not live yet: dkNames %q\n%s", n, s.Stderr())
		}
		return ""
	})
	time.Sleep(200 * time.Millisecond)
	stop()
	if len(failures) > 0 {
		t.Errorf("%d of %d sessions failed during the reload: %q", len(failures), sessions, failures)
	}
	if sessions == 0 {
		t.Error("no session ran during the reload")
	}
	logText := dkReadFile(t, s.LogFile)
	if !regexp.MustCompile(`watch mode: PHP changed, reloading the workers\s+\{"files": \["[^"]*/script/lib/Demo\.php"\][,}]`).MatchString(logText) {
		t.Errorf("the log does not say which file changed:\n%s", logText)
	}
	if !strings.Contains(logText, `"reason": "reload"`) {
		t.Errorf("the workers were not replaced for a reload:\n%s", logText)
	}
	t.Logf("%d sessions ran during the reload", sessions)
}

// TestDevkitWatchOff: watch mode is off by default: the log never mentions it.
func TestDevkitWatchOff(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	s.session(t, 20*time.Second, request("normal"))
	if text := dkReadFile(t, s.LogFile); strings.Contains(text, "watch mode") {
		t.Errorf("watch mode is on by default:\n%s", text)
	}
}

func dkReadFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// dkLogLine returns the first line of the server's log that contains every
// one of parts, waiting a little for it.
func dkLogLine(t *testing.T, s *Server, parts ...string) string {
	t.Helper()
	var found string
	eventually(t, 3*time.Second, func() string {
		for _, line := range strings.Split(dkReadFile(t, s.LogFile), "\n") {
			ok := true
			for _, p := range parts {
				if !strings.Contains(line, p) {
					ok = false
					break
				}
			}
			if ok {
				found = line
				return ""
			}
		}
		return fmt.Sprintf("no log line with %q in:\n%s", parts, dkReadFile(t, s.LogFile))
	})
	return found
}

// TestDevkitErrorsInLog: a handler's exception reaches the log with its
// message, file, line and trace and the session and task ids; an output
// without the expected field gets a log line that dkNames the field.
func TestDevkitErrorsInLog(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, nil, "-Daggregator.pool.mode="+mode, "-Daggregator.fields.items=parts")
			r := s.session(t, 20*time.Second, request("itemsError"))
			if len(r.Msgs) == 0 {
				t.Fatal("no messages")
			}
			sess := fmt.Sprintf(`"session": %q`, r.Msgs[0].str("_session"))
			var task string
			for _, m := range r.Msgs {
				if m.str("_error") == "E_SCRIPT_ERROR" {
					task = fmt.Sprintf(`"task": %d`, m.id())
				}
			}
			if task == "" {
				t.Fatalf("no E_SCRIPT_ERROR: %v", r.Msgs)
			}
			// Both modes: one line with the exception's class, file, line and
			// trace, tagged with the session and task; no PHP text line by line.
			line := dkLogLine(t, s, "handler failed", sess, task, `"error": "demo: the items script failed for supplier error-`)
			for _, re := range []string{`"exception": "RuntimeException"`, `"file": "[^"]+/script/lib/Demo\.php"`, `"line": \d+`, `"trace": "#0 `} {
				if !regexp.MustCompile(re).MatchString(line) {
					t.Errorf("the log line lacks %s:\n%s", re, line)
				}
			}
			if strings.Contains(s.Log(), `"php stderr"`) && strings.Contains(s.Log(), "RuntimeException: demo") {
				t.Errorf("the exception also came as php stderr lines:\n%s", s.Log())
			}

			// With aggregator.fields.items=parts the demo's "items" are the wrong field.
			r = s.session(t, 20*time.Second, request("normal"))
			sess = fmt.Sprintf(`"session": %q`, r.Msgs[0].str("_session"))
			if got := r.Errors(); len(got) != 3 || got[0] != "E_ITEMS_RESPONSE" {
				t.Fatalf("want 3 E_ITEMS_RESPONSE, got %v", got)
			}
			dkLogLine(t, s, "bad items output", sess, `"code": "E_ITEMS_RESPONSE"`, `output has no \"parts\" field`)
		})
	}
}

// dkFreePort is a TCP port nobody listens on (now).
func dkFreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// dkStartFakeSupplier serves script/example/fake_supplier.php with php -S and
// returns its URL.
func dkStartFakeSupplier(t *testing.T) string {
	t.Helper()
	url := fmt.Sprintf("http://127.0.0.1:%d", dkFreePort(t))
	cmd := exec.Command("php", "-S", strings.TrimPrefix(url, "http://"), "script/example/fake_supplier.php")
	cmd.Dir = repoRoot
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	eventually(t, 5*time.Second, func() string {
		resp, err := http.Get(url + "/search?article=1")
		if err != nil {
			return "the fake supplier does not answer: " + err.Error()
		}
		resp.Body.Close()
		return ""
	})
	return url
}

// TestDevkitExample: the example translator (script/example/) against its
// fake supplier, tried with `aggregator call` and searched through the
// server, in both modes.
func TestDevkitExample(t *testing.T) {
	url := dkStartFakeSupplier(t)
	env := []string{"EXAMPLE_SUPPLIER_URL=" + url}
	example := map[string][]string{
		"worker": {"-Daggregator.pool.mode=worker", "-Daggregator.worker.handlers=script/example/handlers.php"},
		"exec": {"-Daggregator.pool.mode=exec",
			"-Daggregator.script.suppliers=php -d display_errors=stderr script/example/suppliers.php",
			"-Daggregator.script.items=php -d display_errors=stderr script/example/items.php"},
	}
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			args := example[mode]
			r := dkCall(t, env, append(args, "call", "suppliers", request("3310"))...)
			if r.exit != 0 || !strings.Contains(r.stdout, "result:    1 supplier\n") || !strings.Contains(r.stdout, `"url":"`+url+`"`) {
				t.Fatalf("call suppliers:\n%s", r)
			}
			elem := fmt.Sprintf(`{"class":"partsapi","params":{"url":%q,"key":"k","timeout":3},"code":"3310","brand":"ctr","analog":"1","info":{"title":"t"}}`, url)
			r = dkCall(t, env, append(args, "call", "items", elem)...)
			if r.exit != 0 || !strings.Contains(r.stdout, "result:    2 items, 2 nested suppliers") ||
				!strings.Contains(r.stdout, `{"code":"3310","brand":"CTR","name":"Ball joint 3310","price":12.5,"quantity":7,`) {
				t.Errorf("call items:\n%s", r)
			}
			failing := strings.Replace(elem, url, url+"/fail", 1)
			r = dkCall(t, env, append(args, "call", "items", failing)...)
			if r.exit != 1 || !strings.Contains(r.stdout, "E_SCRIPT_ERROR") ||
				!strings.Contains(r.stdout, "exception: Aggregator\\Example\\SupplierException: partsapi: HTTP 500 from "+url+"/fail/search") ||
				!regexp.MustCompile(`at \S+/script/example/PartsApiTranslator\.php:\d+`).MatchString(r.stdout) {
				t.Errorf("call items on a failing supplier:\n%s", r)
			}

			s := startServer(t, env, args...)
			res := s.session(t, 20*time.Second, request("3310"))
			if res.Count("PENDING") != 3 || res.Count("SENDING") != 6 || res.Count("SUCCESS") != 3 || len(res.Errors()) != 0 || res.CloseCode != 1000 {
				t.Fatalf("search 3310: PENDING %d SENDING %d SUCCESS %d errors %v close %d", res.Count("PENDING"),
					res.Count("SENDING"), res.Count("SUCCESS"), res.Errors(), res.CloseCode)
			}
			analogs := 0
			for _, m := range res.Msgs {
				info, _ := m["_info"].(map[string]any)
				if m.str("_status") == "SENDING" && info["analogOf"] == "3310 ctr" {
					analogs++
				}
			}
			if analogs != 4 {
				t.Errorf("want 4 items of analogs with _info.analogOf, got %d: %v", analogs, res.Msgs)
			}
		})
	}
}

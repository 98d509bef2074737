package forkserver

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// parityCase is one script run both ways.
type parityCase struct {
	name   string
	flags  []string // PHP's flags, after the program
	script string   // relative to testdata/parity unless absolute
	args   []string
	stdin  string
	kill   time.Duration
}

var (
	onStderr = []string{"-d", "display_errors=stderr"}
	onStdout = []string{"-d", "display_errors=1"}
	logOnly  = []string{"-d", "display_errors=0", "-d", "log_errors=1"}
)

func parityCases(dir string) []parityCase {
	return []parityCase{
		{name: "exit 3", script: "exit_code.php"},
		{name: "exit 0", script: "exit_code.php", args: []string{"0"}},
		{name: "exit 255", script: "exit_code.php", args: []string{"255"}},
		{name: "exit 261 wraps to 5", script: "exit_code.php", args: []string{"261"}},
		{name: "exit inside functions", script: "exit_in_function.php"},
		{name: "exit()", script: "exit_forms.php", args: []string{"plain"}},
		{name: "die with text", script: "exit_forms.php", args: []string{"die"}},
		{name: "exit with text", script: "exit_forms.php", args: []string{"string"}},
		{name: "return from the main script", script: "exit_forms.php", args: []string{"return"}},
		{name: "fatal error, display_errors=stderr", flags: onStderr, script: "fatal.php"},
		{name: "fatal error, display_errors on stdout", flags: onStdout, script: "fatal.php"},
		{name: "fatal error, logged only", flags: logOnly, script: "fatal.php"},
		{name: "uncaught exception in a function", flags: onStderr, script: "uncaught.php"},
		{name: "uncaught exception at the top", flags: onStdout, script: "uncaught.php", args: []string{"top"}},
		{name: "parse error", flags: onStderr, script: "parse_error.php"},
		{name: "output after exit", script: "after_exit.php"},
		{name: "php://stdin twice", script: "stdin_twice.php", args: []string{"wrapper"}, stdin: "line 1\nline 2\n"},
		{name: "STDIN then php://stdin", script: "stdin_twice.php", args: []string{"constant"}, stdin: "line 1\nline 2\n"},
		{name: "php://stdin then STDIN", script: "stdin_twice.php", args: []string{"mixed"}, stdin: "0123456789"},
		{name: "stdin bigger than a pipe", script: "stdin_twice.php", args: []string{"wrapper"}, stdin: strings.Repeat("s", 300000)},
		{name: "empty stdin", script: "stdin_twice.php"},
		{name: "$argv and $_SERVER", script: "argv.php", args: []string{"a b", "--flag", "-x", "ü", ""}},
		{name: "$argv with the script's absolute path", script: filepath.Join(dir, "argv.php"), args: []string{"1"}},
		{name: "$_ENV with variables_order=EGPCS", flags: []string{"-d", "variables_order=EGPCS"}, script: "argv.php"},
		{name: "$_SERVER without S in variables_order", flags: []string{"-d", "variables_order=GPC"}, script: "argv.php"},
		{name: "__FILE__ and __DIR__", script: "file_dir.php"},
		{name: "__FILE__ through a symlink", script: "sub/link.php"},
		{name: "relative requires", flags: onStderr, script: "sub/relative_require.php"},
		{name: "getmypid", script: "pid.php"},
		{name: "the main script's owner and times", script: "main_script.php"},
		{name: "descriptors", script: "fds.php"},
		{name: "every output", flags: onStderr, script: "output.php"},
		{name: "every output, display_errors on stdout", flags: onStdout, script: "output.php"},
		{name: "memory_limit", flags: []string{"-d", "memory_limit=8M", "-d", "display_errors=stderr"}, script: "memory.php"},
		{name: "max_execution_time", flags: []string{"-d", "max_execution_time=1"}, script: "time_limit.php"},
		{name: "ini, prepend and append", flags: []string{"-d", "auto_prepend_file=" + filepath.Join(dir, "prepend.php"),
			"-d", "auto_append_file=" + filepath.Join(dir, "append.php")}, script: "ini.php"},
		{name: "killed by SIGKILL", script: "signal_self.php"},
		{name: "killed by SIGTERM", script: "signal_self.php", args: []string{"15"}},
		{name: "group killed on timeout", script: "stall.php", kill: 300 * time.Millisecond},
		{name: "shebang line", script: "shebang.php"},
		{name: "streams PHP writes when it closes them", script: "closed_at_shutdown.php"},
		{name: "missing script", script: "no_such_script.php"},
	}
}

// TestParity runs each script through the fork server and as a new php
// (what the exec runner does today) and compares stdout, stderr, the
// report pipe and how it ended. The one difference allowed is the stack
// frame of the fork's require (withoutIncludeFrame), one in each trace
// printed; pids are compared as "the process's own".
func TestParity(t *testing.T) {
	if testing.Short() {
		t.Skip("runs PHP about 160 times")
	}
	root := repoRoot(t)
	dir := filepath.Join(root, "pool", "forkserver", "testdata", "parity")
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=/nonexistent", "LANG=C", "PARITY_VAR=seen", "AGGREGATOR_REPORT_FD=3"}
	for _, quick := range []bool{true, false} {
		s := New(Config{Runtime: filepath.Join(root, "src", "ForkServer.php"), Log: zaptest.NewLogger(t), NoQuickExit: !quick})
		t.Cleanup(func() { s.Close() })
		for _, pc := range parityCases(dir) {
			t.Run(fmt.Sprintf("%s (quick exit %v)", pc.name, quick), func(t *testing.T) {
				words := append(append(append([]string{"php"}, pc.flags...), pc.script), pc.args...)
				if _, err := Parse(words); err != nil {
					t.Fatalf("not eligible: %v", err)
				}
				c := call{words: words, dir: dir, env: env, stdin: pc.stdin, kill: pc.kill}
				compare(t, runExec(t, c), runFork(t, s, c))
			})
		}
		for _, pi := range s.Parents() {
			if pi.QuickExit != (quick && runtime.GOARCH == "amd64") {
				t.Errorf("parent %+v: want quick exit %v", pi, quick)
			}
		}
	}
}

// compare checks one call's outcomes, fork+exec (want) against the fork server (got).
func compare(t *testing.T, want, got outcome) {
	t.Helper()
	if got.PID == want.PID || got.PID <= 0 {
		t.Errorf("pid %d (exec's %d)", got.PID, want.PID)
	}
	want.Stdout, want.Stderr = withoutPID(want.Stdout, want.PID), withoutPID(want.Stderr, want.PID)
	got.Stdout, got.Stderr = withoutPID(got.Stdout, got.PID), withoutPID(got.Stderr, got.PID)
	removed := 0
	for _, f := range []*string{&got.Stdout, &got.Stderr, &got.Report} {
		var n int
		*f, n = withoutIncludeFrame(*f)
		removed += n
	}
	// One frame before each trace's {main}, no other difference.
	if traces := strings.Count(want.Stdout+want.Stderr+want.Report, "{main}"); removed != traces {
		t.Errorf("the fork added %d stack frames to %d traces", removed, traces)
	}
	for _, part := range []struct{ name, want, got string }{
		{"status", want.Status, got.Status},
		{"stdout", want.Stdout, got.Stdout},
		{"stderr", want.Stderr, got.Stderr},
		{"report", want.Report, got.Report},
	} {
		if part.want != part.got {
			t.Errorf("%s differs:\n--- php script.php\n%s\n--- fork server\n%s", part.name, clip(part.want), clip(part.got))
		}
	}
	if t.Failed() {
		return
	}
	t.Logf("%s; stdout %d bytes, stderr %d", got.Status, len(got.Stdout), len(got.Stderr))
}

func clip(s string) string {
	if len(s) > 3000 {
		return s[:3000] + "…"
	}
	return s
}

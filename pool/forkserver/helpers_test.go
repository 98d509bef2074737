package forkserver

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// repoRoot is the module root (go test runs in pool/forkserver).
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "src", "ForkServer.php")); err != nil {
		t.Fatalf("repo root %s has no src/ForkServer.php: %v", dir, err)
	}
	return dir
}

// newServer is a Server on this checkout's src/ForkServer.php, closed
// when the test ends.
func newServer(t testing.TB) *Server {
	t.Helper()
	s := New(Config{Runtime: filepath.Join(repoRoot(t), "src", "ForkServer.php"), Log: zaptest.NewLogger(t)})
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// call is one run of a PHP command, the same way in both modes.
type call struct {
	words []string
	dir   string
	env   []string
	stdin string
	kill  time.Duration // kill its group after this long; 0 = never
	// onStart, when set, gets the pid once it started.
	onStart func(pid int)
	// killOn, when set, kills its group once its stderr holds this text
	// (a kill that does not depend on how fast PHP started).
	killOn string
}

// outcome is what a call gave: its stdout, its stderr, what it wrote on its
// report pipe (fd 3, as the exec runner passes it), how it ended, its pid.
type outcome struct {
	Stdout, Stderr, Report, Status string
	PID                            int
}

// runExec runs the call as the exec runner does today: a new process of
// the command, in its own process group.
func runExec(t testing.TB, c call) outcome {
	t.Helper()
	repR, repW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	var pid atomic.Int64
	errb := &trigger{text: c.killOn, fire: func() { _ = syscall.Kill(-int(pid.Load()), syscall.SIGKILL) }}
	cmd := exec.Command(c.words[0], c.words[1:]...)
	cmd.Dir, cmd.Env = c.dir, c.env
	cmd.Stdin = strings.NewReader(c.stdin)
	cmd.Stdout, cmd.Stderr = &out, errb
	cmd.ExtraFiles = []*os.File{repW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("%v: %v", c.words, err)
	}
	repW.Close()
	report := readAll(repR)
	pid.Store(int64(cmd.Process.Pid))
	errb.armed()
	if c.onStart != nil {
		c.onStart(cmd.Process.Pid)
	}
	if c.kill > 0 {
		timer := time.AfterFunc(c.kill, func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
		defer timer.Stop()
	}
	err = cmd.Wait()
	return outcome{Stdout: out.String(), Stderr: errb.String(), Report: <-report, Status: statusText(err), PID: cmd.Process.Pid}
}

// runFork runs the call through the fork server.
func runFork(t testing.TB, s *Server, c call) outcome {
	t.Helper()
	repR, repW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	var proc atomic.Pointer[Proc]
	errb := &trigger{text: c.killOn, fire: func() { proc.Load().Kill() }}
	p, err := s.Start(Spec{Words: c.words, Dir: c.dir, Env: c.env, Stdin: []byte(c.stdin),
		ExtraFiles: []*os.File{repW}, Stdout: &out, Stderr: errb})
	if err != nil {
		repR.Close()
		t.Fatalf("%v: %v", c.words, err)
	}
	report := readAll(repR)
	proc.Store(p)
	errb.armed()
	if c.onStart != nil {
		c.onStart(p.PID())
	}
	if c.kill > 0 {
		timer := time.AfterFunc(c.kill, p.Kill)
		defer timer.Stop()
	}
	select {
	case <-p.Done():
	case <-time.After(30 * time.Second):
		p.Kill()
		t.Fatalf("%v: no end after 30 s", c.words)
	}
	return outcome{Stdout: out.String(), Stderr: errb.String(), Report: <-report, Status: statusText(p.Err()), PID: p.PID()}
}

func readAll(r *os.File) <-chan string {
	ch := make(chan string, 1)
	go func() {
		defer r.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(r)
		ch <- b.String()
	}()
	return ch
}

// statusText is how a process ended, as os/exec words it.
func statusText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// syncBuffer is a bytes.Buffer the copier writes while the test may read.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// trigger is a stderr that calls fire once it holds text (and once the
// process's pid is known: armed).
type trigger struct {
	text string
	fire func()

	mu    sync.Mutex
	buf   bytes.Buffer
	ready bool // the pid is known
	fired bool
}

func (w *trigger) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	w.check()
	return len(p), nil
}

func (w *trigger) armed() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ready = true
	w.check()
}

func (w *trigger) check() {
	if w.text != "" && w.ready && !w.fired && strings.Contains(w.buf.String(), w.text) {
		w.fired = true
		w.fire()
	}
}

func (w *trigger) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// includeFrame is the one stack frame a fork adds to a trace: the entry
// code's require of the script, just before {main} (docs/fork-server.md).
var includeFrame = regexp.MustCompile(`#(\d+) Command line code\(1\): require\(('[^']*')?\)(\n|\\n)#\d+ \{main\}`)

// withoutIncludeFrame removes that frame and says how many it removed.
func withoutIncludeFrame(s string) (string, int) {
	n := len(includeFrame.FindAllStringIndex(s, -1))
	return includeFrame.ReplaceAllString(s, "#$1 {main}"), n
}

// withoutPID replaces whole lines holding pid by "PID".
func withoutPID(s string, pid int) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if l == strconv.Itoa(pid) {
			lines[i] = "PID"
		}
	}
	return strings.Join(lines, "\n")
}

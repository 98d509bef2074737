package forkserver

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/theaspect/aggregator/internal/procstat"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// lifeScript is the command running testdata/life/<name> with args.
func lifeScript(t testing.TB, name string, args ...string) Spec {
	dir := filepath.Join(repoRoot(t), "pool", "forkserver", "testdata", "life")
	return Spec{Words: append([]string{"php", "-d", "display_errors=stderr", name}, args...), Dir: dir}
}

// startCall starts a call whose stdout the test reads line by line.
func startCall(t *testing.T, s *Server, spec Spec) (*Proc, *bufio.Reader) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	spec.Stdout = w // copyOut closes it when the call's stdout ends
	p, err := s.Start(spec)
	if err != nil {
		w.Close()
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	return p, bufio.NewReader(r)
}

// pids reads a line of pids.
func pids(t *testing.T, r *bufio.Reader) []int {
	t.Helper()
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("read pids: %v (%q)", err, line)
	}
	var out []int
	for _, f := range strings.Fields(line) {
		n, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("pid line %q", line)
		}
		out = append(out, n)
	}
	return out
}

// gone waits until none of the processes is alive.
func gone(t *testing.T, what string, pids ...int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range pids {
		for procstat.Alive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: pid %d still alive", what, pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func wait(t *testing.T, p *Proc) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(15 * time.Second):
		t.Fatalf("pid %d: no end", p.PID())
	}
}

func TestParse(t *testing.T) {
	for _, ok := range [][]string{
		{"php", "s.php"},
		{"/usr/bin/php8.2", "-n", "-d", "memory_limit=64M", "-dfoo=1", "-c", "/etc/php.ini", "-q", "s.php", "-r", "x.php"},
		{"php", "--define", "a=b", "--", "dir/s.php", "arg"},
	} {
		c, err := Parse(ok)
		if err != nil {
			t.Errorf("%v: %v", ok, err)
			continue
		}
		if !strings.HasSuffix(c.Script, "s.php") || c.PHP != ok[0] {
			t.Errorf("%v: %+v", ok, c)
		}
	}
	if c, _ := Parse([]string{"php", "-d", "x=1", "s.php", "-d", "y"}); len(c.Flags) != 2 || len(c.Args) != 2 {
		t.Errorf("the script's own arguments are not PHP's flags: %+v", c)
	}
	for _, bad := range [][]string{
		nil, {"php"}, {"php-cgi", "s.php"}, {"python", "s.php"}, {"php", "-r", "echo 1;"}, {"php", "-f", "s.php"},
		{"php", "s.inc"}, {"php", "-d"}, {"php", "-B", "x", "s.php"}, {"phpdbg", "s.php"},
	} {
		if _, err := Parse(bad); !errors.Is(err, ErrNotEligible) {
			t.Errorf("%v: %v, want ErrNotEligible", bad, err)
		}
	}
}

// TestKillReachesTheGroup: Kill ends the child and what it started in its
// group; a child that exits leaves nothing behind in its group either.
func TestKillReachesTheGroup(t *testing.T) {
	s := newServer(t)
	p, out := startCall(t, s, lifeScript(t, "grandchild.php", "wait"))
	sleeper := pids(t, out)[0]
	if st, _ := procstat.Read(sleeper); st.PGRP != p.PID() {
		t.Fatalf("the script's child is in group %d, not the call's %d", st.PGRP, p.PID())
	}
	p.Kill()
	wait(t, p)
	if p.Err() == nil || !strings.Contains(p.Err().Error(), "signal: killed") {
		t.Errorf("err %v, want signal: killed", p.Err())
	}
	gone(t, "killed call", p.PID(), sleeper)

	p, out = startCall(t, s, lifeScript(t, "grandchild.php", "exit"))
	sleeper = pids(t, out)[0]
	wait(t, p)
	if p.Err() != nil {
		t.Errorf("err %v", p.Err())
	}
	gone(t, "what an exited call left", sleeper)
}

// TestParentDeathKillsItsChildren: SIGKILL of the parent ends its calls
// (PR_SET_PDEATHSIG) with ErrParentDied, and the next call gets a new parent.
func TestParentDeathKillsItsChildren(t *testing.T) {
	s := newServer(t)
	p, out := startCall(t, s, lifeScript(t, "sleep.php"))
	ids := pids(t, out)
	if ids[0] != p.PID() {
		t.Fatalf("getmypid %d, Proc.PID %d", ids[0], p.PID())
	}
	if err := syscall.Kill(ids[1], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wait(t, p)
	if !errors.Is(p.Err(), ErrParentDied) {
		t.Errorf("err %v, want ErrParentDied", p.Err())
	}
	gone(t, "child of a killed parent", p.PID())

	p2, out2 := startCall(t, s, lifeScript(t, "sleep.php", "0"))
	if ids2 := pids(t, out2); ids2[1] == ids[1] {
		t.Errorf("the new call's parent is the dead one, %d", ids[1])
	}
	wait(t, p2)
	if p2.Err() != nil {
		t.Errorf("call on the new parent: %v", p2.Err())
	}
}

// TestStandIn is the aggregator's stand-in for TestNothingOutlivesTheAggregator:
// it runs only as that test's child process.
func TestStandIn(t *testing.T) {
	if os.Getenv("FORKSERVER_STANDIN") == "" {
		t.Skip("a helper process of TestNothingOutlivesTheAggregator")
	}
	s := New(Config{Runtime: filepath.Join(repoRoot(t), "src", "ForkServer.php")})
	spec := lifeScript(t, "sleep.php")
	spec.Stdout = os.Stdout // the pids line reaches the test
	if _, err := s.Start(spec); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Minute) // until the test kills it
}

// TestNothingOutlivesTheAggregator: when the process holding the Server is
// SIGKILLed, its parent dies (Pdeathsig) and so do the parent's children.
func TestNothingOutlivesTheAggregator(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestStandIn$", "-test.count=1")
	cmd.Env = append(os.Environ(), "FORKSERVER_STANDIN=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	ids := pids(t, bufio.NewReader(out))
	if st, _ := procstat.Read(ids[1]); st.PPID != cmd.Process.Pid {
		t.Fatalf("parent %d is the child of %d, not of the stand-in %d", ids[1], st.PPID, cmd.Process.Pid)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	gone(t, "the fork server and its call after the aggregator's death", ids[1], ids[0])
}

// TestReload: a new parent takes the new calls while a call in flight
// finishes on the old one, which then exits.
func TestReload(t *testing.T) {
	s := newServer(t)
	release := filepath.Join(t.TempDir(), "release")
	old, out := startCall(t, s, lifeScript(t, "wait_file.php", release))
	oldParent := pids(t, out)[1]
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	p, out2 := startCall(t, s, lifeScript(t, "sleep.php", "0"))
	if newParent := pids(t, out2)[1]; newParent == oldParent {
		t.Fatalf("after Reload a call still forks from %d", oldParent)
	}
	wait(t, p)
	if !procstat.Alive(oldParent) {
		t.Fatal("the old parent exited with a call in flight")
	}
	retired := 0
	for _, pi := range s.Parents() {
		if pi.Retired {
			retired++
		}
	}
	if retired != 1 {
		t.Errorf("parents %+v: want one retired", s.Parents())
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	wait(t, old)
	if rest, _ := out.ReadString('\n'); old.Err() != nil || rest != "released\n" {
		t.Errorf("call in flight during the reload: %v, %q", old.Err(), rest)
	}
	gone(t, "the old parent after its last call", oldParent)
}

// TestReloadFailureKeepsTheOldParent (SPEC §16): while the new parent
// cannot start, the old one keeps serving and Reload says why.
func TestReloadFailureKeepsTheOldParent(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"ForkServer.php", "ForkCall.php", "ForkExit.php", "ForkMainScript.php"} {
		b, err := os.ReadFile(filepath.Join(repoRoot(t), "src", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	runtime := filepath.Join(dir, "ForkServer.php")
	s := New(Config{Runtime: runtime, Log: zap.NewNop()})
	t.Cleanup(func() { s.Close() })
	spec := lifeScript(t, "echo.php", "before")
	if err := s.Prepare(spec.Words); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(runtime)
	if err := os.WriteFile(runtime, []byte("<?php syntax error here"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := s.Reload()
	if err == nil || !strings.Contains(err.Error(), "keeps serving") || !strings.Contains(err.Error(), "syntax error") {
		t.Fatalf("Reload with a broken ForkServer.php: %v", err)
	}
	var out syncBuffer
	spec.Stdin, spec.Stdout = []byte("x"), &out
	p, err := s.Start(spec)
	if err != nil {
		t.Fatalf("the old parent no longer serves: %v", err)
	}
	wait(t, p)
	if out.String() != "before:x" {
		t.Errorf("output %q", out.String())
	}
	if err := os.WriteFile(runtime, good, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err != nil {
		t.Errorf("Reload once fixed: %v", err)
	}
}

// TestUnavailable: a PHP without ext-ffi (php -n) or with FFI turned off is
// ErrUnavailable with its reason, said once at INFO, and not tried again
// until Reload.
func TestUnavailable(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	s := New(Config{Runtime: filepath.Join(repoRoot(t), "src", "ForkServer.php"), Log: zap.New(core)})
	t.Cleanup(func() { s.Close() })
	for flags, reason := range map[string]string{"-n": "ext-ffi is not loaded", "-dffi.enable=0": "ffi.enable=0"} {
		spec := lifeScript(t, "echo.php")
		spec.Words = append([]string{"php", flags}, spec.Words[1:]...)
		for i := 0; i < 3; i++ { // tried once: each start that fails logs a line
			_, err := s.Start(spec)
			if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), reason) {
				t.Fatalf("%s: %v, want ErrUnavailable saying %q", flags, err, reason)
			}
		}
	}
	if n := logs.FilterMessageSnippet("fork server unavailable").Len(); n != 2 {
		t.Errorf("%d INFO lines, want one per command: %v", n, logs.All())
	}
	if len(s.Parents()) != 0 {
		t.Errorf("parents %+v", s.Parents())
	}
}

// TestFallbackLeavesExtraFilesOpen: on ErrNotEligible and ErrUnavailable
// the caller starts the call the old way, with the same fds 3…; a call
// too big for the control socket is ErrUnavailable too.
func TestFallbackLeavesExtraFilesOpen(t *testing.T) {
	s := newServer(t)
	huge := lifeScript(t, "echo.php")
	huge.Env = append(os.Environ(), "HUGE="+strings.Repeat("h", 400<<10))
	notPHPScript := lifeScript(t, "echo.php")
	notPHPScript.Words = []string{"php", "-r", "echo 1;"}
	for name, spec := range map[string]Spec{"huge environment": huge, "not php script.php": notPHPScript} {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		spec.ExtraFiles = []*os.File{w}
		_, err = s.Start(spec)
		if !errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrNotEligible) {
			t.Errorf("%s: %v, want a fallback error", name, err)
		}
		if _, werr := w.Write([]byte("x")); werr != nil {
			t.Errorf("%s: the extra file was closed: %v", name, werr)
		}
		r.Close()
		w.Close()
	}
	var out syncBuffer
	spec := lifeScript(t, "echo.php", "after")
	spec.Stdin, spec.Stdout = []byte("x"), &out
	p, err := s.Start(spec)
	if err != nil {
		t.Fatal(err)
	}
	wait(t, p)
	if out.String() != "after:x" {
		t.Errorf("a normal call after the huge one: %q", out.String())
	}
}

// TestCallsDoNotMix: calls at once, each gets its own stdin back.
func TestCallsDoNotMix(t *testing.T) {
	s := newServer(t)
	var wg sync.WaitGroup
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 15; i++ {
				id := fmt.Sprintf("%d-%d", g, i)
				var out, errb syncBuffer
				spec := lifeScript(t, "echo.php", id)
				spec.Stdin, spec.Stdout, spec.Stderr = []byte(strings.Repeat(id, 1000)), &out, &errb
				p, err := s.Start(spec)
				if err != nil {
					t.Error(err)
					return
				}
				<-p.Done()
				if want := id + ":" + strings.Repeat(id, 1000); p.Err() != nil || out.String() != want {
					t.Errorf("call %s: %v, %d bytes, stderr %q", id, p.Err(), len(out.String()), errb.String())
				}
			}
		}()
	}
	wg.Wait()
}

// TestChildrenDoNotShareRandomState: the parent seeds nothing, so each
// child draws its own numbers.
func TestChildrenDoNotShareRandomState(t *testing.T) {
	s := newServer(t)
	seen := map[string]bool{}
	for i := 0; i < 5; i++ {
		var out syncBuffer
		spec := lifeScript(t, "random.php")
		spec.Stdout = &out
		p, err := s.Start(spec)
		if err != nil {
			t.Fatal(err)
		}
		wait(t, p)
		for _, f := range strings.Fields(out.String()) {
			if seen[f] {
				t.Errorf("two children drew %s", f)
			}
			seen[f] = true
		}
	}
}

// TestBacktraceOnSignal: SIGUSR1 to a call reaches the prepend file's
// handler in the child, as the exec runner's slowlog uses it.
func TestBacktraceOnSignal(t *testing.T) {
	s := newServer(t)
	root := repoRoot(t)
	spec := lifeScript(t, "sleep.php", "5")
	spec.Words = append([]string{"php", "-d", "auto_prepend_file=" + filepath.Join(root, "src", "prepend.php")}, spec.Words[1:]...)
	r, w, _ := os.Pipe()
	defer r.Close()
	spec.Stderr = w
	p, out := startCall(t, s, spec)
	errs := bufio.NewReader(r)
	if line, _ := errs.ReadString('\n'); line != "AGGREGATOR-BACKTRACE-READY\n" {
		t.Fatalf("stderr %q", line)
	}
	pids(t, out) // the script runs
	if err := p.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	var block []string
	for len(block) == 0 || block[len(block)-1] != "AGGREGATOR-BACKTRACE-END" {
		line, err := errs.ReadString('\n')
		if err != nil {
			t.Fatalf("backtrace %v: %v", block, err)
		}
		block = append(block, strings.TrimSpace(line))
	}
	if !strings.Contains(strings.Join(block, "\n"), "sleep.php") {
		t.Errorf("backtrace %v", block)
	}
	p.Kill()
	wait(t, p)
}

func TestMissingDirectory(t *testing.T) {
	s := newServer(t)
	spec := lifeScript(t, "echo.php")
	spec.Dir = "/nonexistent/dir"
	_, err := s.Start(spec)
	var pe *os.PathError
	if !errors.As(err, &pe) || pe.Op != "chdir" {
		t.Errorf("err %v, want a chdir *os.PathError as os/exec gives", err)
	}
}

// TestCloseEndsEverything: Close kills the parents and the calls in flight.
func TestCloseEndsEverything(t *testing.T) {
	s := New(Config{Runtime: filepath.Join(repoRoot(t), "src", "ForkServer.php")})
	p, out := startCall(t, s, lifeScript(t, "sleep.php"))
	ids := pids(t, out)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wait(t, p)
	if p.Err() == nil {
		t.Error("a call cut by Close ended with no error")
	}
	gone(t, "after Close", ids...)
	if _, err := s.Start(lifeScript(t, "echo.php")); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Start after Close: %v", err)
	}
}

// TestParentDoesNotGrow: serving calls leaves nothing behind in the parent.
func TestParentDoesNotGrow(t *testing.T) {
	s := newServer(t)
	calls := func(n int) {
		for i := 0; i < n; i++ {
			spec := lifeScript(t, "echo.php")
			spec.Stdin = []byte(strings.Repeat("s", 10000))
			p, err := s.Start(spec)
			if err != nil {
				t.Fatal(err)
			}
			wait(t, p)
		}
	}
	calls(20)
	parent := s.Parents()[0].PID
	before := rssAnon(t, parent)
	calls(300)
	after := rssAnon(t, parent)
	if after-before > 512 {
		t.Errorf("the parent's anonymous memory grew from %d to %d KB over 300 calls", before, after)
	}
	t.Logf("parent RssAnon %d KB, then %d KB after 300 more calls", before, after)
}

// rssAnon is a process's resident anonymous memory in KB.
func rssAnon(t *testing.T, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "RssAnon:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatalf("no RssAnon for %d", pid)
	return 0
}

// TestCallsDuringReloads: calls go on while parents are replaced, and
// every one of them succeeds with its own answer.
func TestCallsDuringReloads(t *testing.T) {
	s := newServer(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var calls atomic.Int64
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("%d-%d", g, i)
				var out syncBuffer
				spec := lifeScript(t, "echo.php", id)
				spec.Stdin, spec.Stdout = []byte("x"), &out
				p, err := s.Start(spec)
				if err != nil {
					t.Errorf("call %s: %v", id, err)
					return
				}
				<-p.Done()
				if p.Err() != nil || out.String() != id+":x" {
					t.Errorf("call %s: %v, %q", id, p.Err(), out.String())
					return
				}
				calls.Add(1)
			}
		}()
	}
	for i := 0; i < 4; i++ {
		time.Sleep(150 * time.Millisecond)
		if err := s.Reload(); err != nil {
			t.Error(err)
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%d calls across 4 reloads", calls.Load())
	if calls.Load() == 0 {
		t.Error("no call ran")
	}
}

// TestEscapedChildDoesNotHoldTheCall: a process that left the call's group
// holding its pipes delays the call's end by drainWait at most.
func TestEscapedChildDoesNotHoldTheCall(t *testing.T) {
	s := newServer(t)
	var out, errb syncBuffer
	spec := lifeScript(t, "escape.php")
	spec.Stdin, spec.Stdout, spec.Stderr = []byte(strings.Repeat("i", 200<<10)), &out, &errb // more stdin than the pipe holds: nobody reads it
	p, err := s.Start(spec)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	wait(t, p)
	if p.Err() != nil || out.String() != "answer\n" {
		t.Errorf("%v, %q", p.Err(), out.String())
	}
	if d := time.Since(start); d < drainWait || d > drainWait+5*time.Second {
		t.Errorf("the call ended %v after it started, want drainWait (%v) and a little", d, drainWait)
	}
	escaped, err := strconv.Atoi(strings.TrimSpace(errb.String()))
	if err != nil {
		t.Fatalf("stderr %q", errb.String())
	}
	if !procstat.Alive(escaped) {
		t.Error("the escaped process is gone: the test did not hold the pipes")
	}
	t.Logf("ended %v after it started, the escaped process still running", time.Since(start))
	_ = syscall.Kill(escaped, syscall.SIGKILL)
}

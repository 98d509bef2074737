package forkserver

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/theaspect/aggregator/internal/benchjob"
	"github.com/theaspect/aggregator/internal/procstat"
)

// benchParallel is how many calls run at once: ENVIRONMENT.md's reference
// figure for fork+exec (≈ 135 calls/s) is with 2 in parallel.
const benchParallel = 2

// benchCall is a call as the exec runner makes it: the demo's items
// script with the prepend file, the report pipe, DEMO_DELAY_MS=0.
func benchCall(b *testing.B, script, input string) call {
	root := repoRoot(b)
	return call{
		words: []string{"php", "-d", "auto_prepend_file=" + filepath.Join(root, "src", "prepend.php"),
			"-d", "display_errors=stderr", script},
		dir: root, env: append(os.Environ(), "DEMO_DELAY_MS=0", "AGGREGATOR_REPORT_FD=3"), stdin: input + "\n",
	}
}

// BenchmarkCall is one exec call, 2 at once, through the fork server (with
// its quick exit, and with PHP's own: fork-php-exit) and as a new php
// (what the exec runner does today): the demo's items script
// for normal-1 (a realistic translator: the prepend file, the autoloader,
// the demo's classes), and a script that only echoes its stdin (what a
// call costs before the script's work). Reported: calls/s, and the CPU
// time per call of this process (go-µs/job) and of PHP (php-µs/job: for
// the fork server its parent and the children it reaped, for fork+exec
// the php processes this process reaped).
func BenchmarkCall(b *testing.B) {
	for _, job := range []struct{ name, script, input string }{
		{"demo-items", "script/items.php", `{"class":"normal-1","code":"3310","brand":"ctr","analog":"1"}`},
		{"echo", "pool/forkserver/testdata/life/echo.php", `{"code":"3310"}`},
	} {
		for _, mode := range []string{"fork", "fork-php-exit", "exec"} {
			b.Run(job.name+"/"+mode, func(b *testing.B) {
				c := benchCall(b, job.script, job.input)
				run, phpCPU := benchMode(b, mode)
				before := phpCPU()
				benchjob.Spread(b, benchParallel, func() []int { return nil }, func(int) error {
					o := run(c)
					if o.Status != "exit status 0" || o.Stdout == "" {
						return fmt.Errorf("%s: %s, stdout %q, stderr %q", mode, o.Status, o.Stdout, o.Stderr)
					}
					return nil
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
				b.ReportMetric((phpCPU()-before).Seconds()*1e6/float64(b.N), "php-µs/job")
			})
		}
	}
}

// benchMode is how a mode runs a call and how much CPU its PHP processes
// have used so far.
func benchMode(b *testing.B, mode string) (func(call) outcome, func() time.Duration) {
	if mode == "exec" {
		return func(c call) outcome { return runExec(b, c) }, reapedCPU
	}
	s := New(Config{Runtime: filepath.Join(repoRoot(b), "src", "ForkServer.php"), NoQuickExit: mode == "fork-php-exit"})
	b.Cleanup(func() { s.Close() })
	c := benchCall(b, "script/items.php", "")
	if err := s.Prepare(c.words); err != nil {
		b.Fatal(err)
	}
	parent := s.Parents()[0].PID
	return func(c call) outcome { return runFork(b, s, c) }, func() time.Duration {
		st, _ := procstat.Read(parent)
		return st.CPU + st.Reaped
	}
}

// reapedCPU is the CPU time of this process's children that it waited for.
func reapedCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPSS is the memory of a call in flight: inFlight calls of the
// demo's items script for a timeout-* supplier (it has loaded everything
// and sleeps), each one's proportional set size (PSS: its unshared memory
// plus its share of what it shares), and the fork server's parent's.
func BenchmarkPSS(b *testing.B) {
	const inFlight = 8
	for _, mode := range []string{"fork", "exec"} {
		b.Run(mode, func(b *testing.B) {
			var s *Server
			if mode == "fork" {
				s = newServer(b)
			}
			for i := 0; i < b.N; i++ {
				var procs []*inFlightCall
				for j := 0; j < inFlight; j++ {
					procs = append(procs, startInFlight(b, s))
				}
				time.Sleep(500 * time.Millisecond) // each has loaded the demo and sleeps
				var sum int
				for _, p := range procs {
					sum += pss(p.pid)
					p.stop()
				}
				b.ReportMetric(float64(sum)/inFlight, "pss-KB/call")
				if s != nil {
					b.ReportMetric(float64(pss(s.Parents()[0].PID)), "parent-pss-KB")
				}
			}
		})
	}
}

// inFlightCall is a call of a supplier that sleeps, in either mode.
type inFlightCall struct {
	pid  int
	done chan struct{}
}

func startInFlight(b *testing.B, s *Server) *inFlightCall {
	c := benchCall(b, "script/items.php", `{"class":"timeout-1","code":"3310"}`)
	started := make(chan int, 1)
	c.onStart = func(pid int) { started <- pid }
	f := &inFlightCall{done: make(chan struct{})}
	go func() {
		defer close(f.done)
		if s == nil {
			runExec(b, c)
		} else {
			runFork(b, s, c)
		}
	}()
	f.pid = <-started
	return f
}

func (f *inFlightCall) stop() {
	_ = syscall.Kill(-f.pid, syscall.SIGKILL)
	<-f.done
}

// pss is a process's proportional set size in KB (0 when it is gone).
func pss(pid int) int {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "Pss:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

package pool

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"
)

// How a PHP process comes to exist: the seam between the runners and the
// operating system (roadrunner-server/pool's Factory). The Supervisor
// starts every worker through a WorkerFactory and Exec every call through
// a CallFactory; what comes back is a Process either way. The defaults
// fork and exec the configured command (PipeWorkers, ForkExec); another
// way to start PHP (a warm parent that forks one child per exec call, a
// sandbox) is another implementation, set in WorkerConfig.Factory or
// ExecConfig.Factory, with no change to the runners.

// Process is one PHP process as its runner sees it, however it was
// started. A factory guarantees that it runs in a process group of its
// own, so that Kill reaches everything it started, and that it dies with
// the aggregator (Pdeathsig), so that no PHP process outlives the server
// (SPEC §11).
type Process interface {
	// PID is its process id, in logs, errors and /workers.
	PID() int
	// Signal sends sig to the process alone: SIGUSR1 asks PHP for its
	// backtrace (backtrace.go).
	Signal(sig os.Signal) error
	// Kill SIGKILLs its whole process group; it may be called at any time,
	// more than once.
	Kill()
	// Done is closed once it ended, its group was killed and what it wrote
	// to its stdout and stderr was read to the end (or given up on after
	// drainWait, when a child that left the group holds the pipes).
	Done() <-chan struct{}
	// Exit is how it ended; valid once Done is closed.
	Exit() Exit
}

// Exit is how a process ended.
type Exit struct {
	Code     int            // its exit status, when it exited (Signal is 0)
	Signal   syscall.Signal // the signal that ended it, or 0
	CoreDump bool
	Err      error // it could not be waited for: no status at all
}

// Failed reports whether it ended any other way than exit status 0.
func (e Exit) Failed() bool { return e.Err != nil || e.Signal != 0 || e.Code != 0 }

// String says how it ended as os/exec does: "exit status 3", "signal: killed".
func (e Exit) String() string {
	var s string
	switch {
	case e.Err != nil:
		return e.Err.Error()
	case e.Signal != 0:
		s = "signal: " + e.Signal.String()
	default:
		s = "exit status " + strconv.Itoa(e.Code)
	}
	if e.CoreDump {
		s += " (core dumped)"
	}
	return s
}

// WorkerFactory starts warm worker processes (worker.go): a process and
// the two ends of its frame stream (docs/PROTOCOL.md).
type WorkerFactory interface {
	// StartWorker starts one worker. What it writes to its stdout and
	// stderr goes to stdout and stderr (line writers that log it). When it
	// fails, nothing is left running and the error says why in full (the
	// message of the E_SCRIPT_START it becomes).
	StartWorker(stdout, stderr io.Writer) (*WorkerProcess, error)
}

// WorkerProcess is a started worker: its process, and Go's ends of the
// pipes it reads frames from (its fd 3) and writes frames to (its fd 4).
// The worker owns and closes both files.
type WorkerProcess struct {
	Process
	ToPHP   *os.File
	FromPHP *os.File
}

// PipeWorkers is the default WorkerFactory: the command words (the
// handlers file last) started as a new process, fd 3 and fd 4 the read end
// and the write end of two pipes.
type PipeWorkers struct {
	Words []string
	Dir   string
	Env   []string
}

// StartWorker starts one worker.
func (f PipeWorkers) StartWorker(stdout, stderr io.Writer) (*WorkerProcess, error) {
	jobR, jobW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pipe: %w", err)
	}
	resR, resW, err := os.Pipe()
	if err != nil {
		closeAll([]*os.File{jobR, jobW})
		return nil, fmt.Errorf("pipe: %w", err)
	}
	p, err := startProcess(procSpec{words: f.Words, dir: f.Dir, env: f.Env, extra: []*os.File{jobR, resW},
		stdout: stdout, stderr: stderr})
	if err != nil {
		closeAll([]*os.File{jobW, resR})
		return nil, startFailed(f.Words, err)
	}
	return &WorkerProcess{Process: p, ToPHP: jobW, FromPHP: resR}, nil
}

// CallFactory starts the process of one exec call (exec.go, execcall.go).
// A factory may start it any way it likes as long as the call's process
// sees what a `php script.php` started by ForkExec sees: CallSpec says
// what that is. A factory that keeps processes of its own (a warm parent)
// implements io.Closer too: Exec closes it once its last call is over.
type CallFactory interface {
	// StartCall starts the call's process. When it fails, nothing is left
	// running, spec.Report is closed, and the error says why in full (the
	// message of the E_SCRIPT_START it becomes).
	StartCall(spec *CallSpec) (Process, error)
}

// CallSpec is what the process of one exec call gets.
type CallSpec struct {
	Words []string // the command: the configured one, with the prepend file (withPrepend)
	Dir   string   // its working directory
	Env   []string // its environment, with AGGREGATOR_REPORT_FD, _OUTPUT_LIMIT and _DEADLINE
	// Stdin is what it reads on its standard input (the job's JSON and a
	// newline), then end of file.
	Stdin []byte
	// Report is the write end of the report pipe (src/Report.php): it must
	// be the call's fd 3 (reportFD, as the environment says). The factory
	// closes Go's copy once the call has its own, also when it fails.
	Report *os.File
	// Stdout gets what it writes to its standard output: the answer.
	// Exec bounds it (aggregator.limit.output-size) and kills the call
	// when it is over.
	Stdout io.Writer
	// Stderr gets what it writes to its standard error (a line writer).
	Stderr io.Writer
}

// ForkExec is the default CallFactory: every call is a new process, the
// command forked and executed.
type ForkExec struct{}

// StartCall starts one call's process.
func (ForkExec) StartCall(s *CallSpec) (Process, error) {
	p, err := startProcess(procSpec{words: s.Words, dir: s.Dir, env: s.Env, stdin: s.Stdin,
		extra: []*os.File{s.Report}, stdout: s.Stdout, stderr: s.Stderr})
	if err != nil {
		return nil, startFailed(s.Words, err)
	}
	return p, nil
}

// startFailed says why a command could not be started.
func startFailed(words []string, err error) error {
	return fmt.Errorf("cannot start %q: %w", words[0], err)
}

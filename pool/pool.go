// Package pool runs PHP for the aggregator: warm goridge workers (Supervisor)
// or one process per call (Exec), both behind aggregator.Runner. Every error
// a runner returns is an *aggregator.Error.
//
// How a PHP process comes to exist is a seam (factory.go): a WorkerFactory
// starts workers, a CallFactory starts exec calls, and either gives back a
// Process. The defaults fork and exec the configured command.
//
// A worker is a few small owners, one file each: its process and the link
// that carries its frames (link.go), its life cycle, a table every change
// of state goes through (pool/fsm), its conversation, the jobs in flight
// by id and whose turn it is to read (conversation.go), and the fetch()
// calls it performs for its jobs (fetchcall.go). worker.go starts it and
// steers its life, worker_job.go runs a job on it, worker_read.go reads
// its frames. The Supervisor (supervisor.go) keeps slots (slot.go), the
// choice of the least busy worker with room, reloads and health; Exec
// (exec.go) runs each job as an execCall (execcall.go).
package pool

import (
	"fmt"
	"strings"
	"sync"

	"github.com/theaspect/aggregator"
)

// Reason is why a worker left the pool; the label of
// aggregator_worker_restarts_total and of the "worker exited" log line.
type Reason string

// Reasons a worker leaves.
const (
	ReasonCrash       Reason = "crash"        // it died on its own
	ReasonTimeout     Reason = "timeout"      // a job stuck in PHP code past its time: killed
	ReasonFatal       Reason = "fatal"        // a job hit a fatal error or called exit()
	ReasonMaxJobs     Reason = "max_jobs"     // aggregator.pool.max-jobs reached
	ReasonMaxMemory   Reason = "max_memory"   // aggregator.pool.max-memory passed
	ReasonReload      Reason = "reload"       // replaced by new code
	ReasonHealth      Reason = "health"       // it did not answer a ping
	ReasonProtocol    Reason = "protocol"     // it broke the protocol
	ReasonOutputLimit Reason = "output_limit" // a job answered more than aggregator.limit.output-size
	ReasonShutdown    Reason = "shutdown"     // the runner closed
)

// Errors of Run, as the SPEC's codes.
func errCancelled() error {
	return aggregator.Errorf(aggregator.EScriptCancelled, "its time ran out before PHP took it")
}

func errClosed() error {
	return aggregator.Errorf(aggregator.EScriptCancelled, "the runner is shutting down")
}

// SplitCommand splits a command line into words, without a shell: words are
// separated by blanks; single or double quotes group words with blanks.
func SplitCommand(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote = r
			inWord = true
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote in %q", quote, s)
	}
	if inWord {
		words = append(words, cur.String())
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("empty command")
	}
	return words, nil
}

// gate counts the calls in progress and refuses new ones once closed, so
// Close can wait for all of them without racing WaitGroup.Add against Wait.
type gate struct {
	mu     sync.Mutex
	closed bool
	calls  sync.WaitGroup
}

// enter admits a call; false once the gate is closed.
func (g *gate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.calls.Add(1)
	return true
}

func (g *gate) leave() { g.calls.Done() }

// closeAndWait refuses new calls and waits for those in progress.
func (g *gate) closeAndWait() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.calls.Wait()
}

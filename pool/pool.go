// Package pool runs PHP for the aggregator: warm goridge workers (Supervisor)
// or one process per call (Exec), both behind aggregator.Runner.
//
// A worker owns its process and its conversation (worker.go): it sends jobs,
// reads and decodes every frame on its own goroutine, performs the fetch()
// calls its jobs ask for, cancels, kills, and says why it retired. The
// Supervisor keeps only slots, the workers that can take a job, reloads and
// health. Every error a runner returns is an *aggregator.Error.
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

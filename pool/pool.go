// Package pool runs PHP: warm goridge workers (Supervisor) or one process per
// call (Exec), behind the small Runner interface the server uses.
package pool

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Kind says which PHP entry point a job calls.
type Kind uint32

// The two kinds of jobs; their numbers are the job frame's first option word.
const (
	Suppliers Kind = 1
	Items     Kind = 2
)

func (k Kind) String() string {
	switch k {
	case Suppliers:
		return "suppliers"
	case Items:
		return "items"
	}
	return fmt.Sprintf("kind(%d)", uint32(k))
}

// Job is one PHP call. Session, Task and Class only label logs and diagnostics.
type Job struct {
	Kind    Kind
	Input   []byte
	Session string
	Task    int64
	Class   string
}

// Result is what a finished PHP call printed, and who ran it.
type Result struct {
	Output   []byte
	PID      int
	Duration time.Duration
}

// Runner runs jobs. Run blocks until the job is done, failed, or ctx ends; when
// ctx ends while the job runs, its process is killed before Run returns.
type Runner interface {
	Run(ctx context.Context, job *Job) (Result, error)
	// Reload replaces the PHP processes gracefully (new code for new jobs).
	Reload()
	// Health reports why PHP cannot run now, or nil.
	Health() error
	// Info lists the PHP processes for diagnostics.
	Info() []ProcInfo
	// Close kills every PHP process and waits for them.
	Close() error
}

// ProcInfo describes one PHP process for /workers and /health.
type ProcInfo struct {
	PID     int       `json:"pid"`
	State   string    `json:"state"`
	Jobs    int64     `json:"jobs"`
	Memory  uint64    `json:"memory"`
	Started time.Time `json:"started"`
	Session string    `json:"session,omitempty"`
	Task    int64     `json:"task,omitempty"`
	Class   string    `json:"class,omitempty"`
	Since   time.Time `json:"since,omitempty"`
}

// Errors of Run. The server maps them to the SPEC's codes; wrapped errors add
// the detail for the log.
var (
	// ErrStart: the process could not be started (E_SCRIPT_START).
	ErrStart = errors.New("cannot start PHP")
	// ErrFailed: the script exited non-zero, or the worker died or failed the job (E_SCRIPT_ERROR).
	ErrFailed = errors.New("PHP failed")
	// ErrOutputLimit: the job printed more than the output limit; it was killed (E_SCRIPT_ERROR).
	ErrOutputLimit = errors.New("PHP output exceeds aggregator.limit.output-size")
	// ErrNotStarted: ctx ended before a process took the job (E_SCRIPT_CANCELLED).
	ErrNotStarted = errors.New("job cancelled before it started")
	// ErrKilled: ctx ended while the job ran; its process was killed (E_SCRIPT_TIMEOUT).
	ErrKilled = errors.New("job killed: its time ran out")
	// ErrClosed: the runner is closed.
	ErrClosed = errors.New("runner closed")
)

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

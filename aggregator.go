// Package aggregator is the domain of the search aggregator: the jobs PHP
// runs for a search, their results, the Runner that runs them (and its
// Monitor and Reloader), the Fetcher that performs a translator's HTTP
// calls, and the one Error vocabulary (the SPEC's E_* codes) that every
// layer speaks.
//
// The subpackages each wrap one dependency: server (HTTP and websockets),
// pool (PHP processes), fetch (net/http for supplier calls); cmd/aggregator
// wires them. server and pool know each other only through this package.
package aggregator

import (
	"context"
	"fmt"
	"time"
)

// Kind says which PHP entry point a job calls.
type Kind uint32

// The two kinds of jobs; their numbers travel in the worker protocol.
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

// Job is one PHP call: a suppliers or items handler with its JSON input.
// Session, Task and Class name it in logs and diagnostics: they are the
// _session and _id the browser sees and the supplier's class.
type Job struct {
	Kind    Kind
	Input   []byte
	Session string
	Task    int64
	Class   string
}

// Result is what a PHP call answered, who ran it, and what PHP said about it
// on the side: diagnostics are data, so `aggregator call`, the log and
// /workers read them from here and never parse log lines or PHP's text.
type Result struct {
	Output   []byte
	PID      int
	Duration time.Duration
	// Stderr holds the lines PHP wrote for this job: its stderr, and stray
	// output (echo) prefixed "stdout: ". Lines that cannot be told apart
	// between several jobs of one worker are logged but not listed here.
	Stderr []string
	// Exception is the handler's uncaught exception (or fatal error), if any.
	Exception *Exception
}

// Exception is a PHP throwable as the worker or exec adapter reports it.
type Exception struct {
	Class   string `json:"class"`
	Message string `json:"message"`
	File    string `json:"file"`
	Line    int    `json:"line"`
	Trace   string `json:"trace"`
	// Public is set for \Aggregator\PublicError: Message may be shown to
	// the customer (SPEC §15). Any other message stays in the log.
	Public bool `json:"public,omitempty"`
	// Hint says what to do about it, when PHP knows (e.g. where
	// memory_limit comes from).
	Hint string `json:"hint,omitempty"`
}

// Runner runs jobs in PHP: what a search needs of it. Run blocks until the
// job is done, failed, or ctx ends; every error it returns is an *Error
// with the SPEC's code.
//
// The runners (pool.Supervisor, pool.Exec) do more, each behind its own
// small interface where it is used: Monitor for the operators' endpoints,
// Reloader for whoever reloads (SIGHUP, watch mode), and io.Closer for
// whoever made the runner and ends it (it kills every PHP process and
// waits for them).
type Runner interface {
	Run(ctx context.Context, job *Job) (Result, error)
}

// Monitor reports on the PHP processes: what /health and /workers need.
type Monitor interface {
	// Health says whether PHP can run jobs now.
	Health() Health
	// Info lists the PHP processes and what they run, for /workers.
	Info() []ProcInfo
}

// Reloader replaces the PHP processes with ones running the code on disk,
// gracefully: new ones first, no job lost (SPEC §16). Worker mode's
// pool.Supervisor is one; exec mode starts every call from the code on
// disk and has nothing to reload.
type Reloader interface {
	Reload()
}

// Health is the state /health reports.
type Health struct {
	Status HealthStatus `json:"status"`
	Reason string       `json:"reason,omitempty"`
}

// HealthStatus is ok, degraded (serving, but something needs an operator)
// or down (searches fail).
type HealthStatus string

// Health states.
const (
	HealthOK       HealthStatus = "ok"
	HealthDegraded HealthStatus = "degraded"
	HealthDown     HealthStatus = "down"
)

// Worse returns the worse of two health reports (down > degraded > ok).
func (h Health) Worse(o Health) Health {
	rank := map[HealthStatus]int{HealthOK: 0, HealthDegraded: 1, HealthDown: 2}
	if rank[o.Status] > rank[h.Status] {
		return o
	}
	return h
}

// ProcInfo describes one PHP process for /workers.
type ProcInfo struct {
	PID     int       `json:"pid"`
	State   string    `json:"state"`
	Jobs    int64     `json:"jobs"`   // jobs it finished
	Memory  uint64    `json:"memory"` // bytes PHP reported after its last job
	Started time.Time `json:"started"`
	// Running are the jobs it runs now (several with aggregator.pool.concurrency > 1).
	Running []JobInfo `json:"running,omitempty"`
}

// JobInfo is one job in flight on a PHP process.
type JobInfo struct {
	Session string     `json:"session"`
	Task    int64      `json:"task"`
	Kind    string     `json:"kind"`
	Class   string     `json:"class,omitempty"`
	Since   time.Time  `json:"since"`
	Calls   []CallInfo `json:"calls,omitempty"` // fetch() calls in flight
}

// CallInfo is one fetch() call in flight.
type CallInfo struct {
	Method string    `json:"method"`
	URL    string    `json:"url"`
	Host   string    `json:"host"`
	Since  time.Time `json:"since"`
}

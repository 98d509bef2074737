package server

import "github.com/theaspect/aggregator"

// Ending is why a session ended: the reason label of
// aggregator_sessions_ended_total. It also says what the tasks still open
// then count as (see left).
type Ending string

// The endings of a session, and the close code the browser gets.
const (
	EndDone       Ending = "done"        // its last task ended: 1000
	EndBadRequest Ending = "bad_request" // E_REQUEST_JSON or E_ILLEGAL_REQUEST: 1008
	EndBadUTF8    Ending = "bad_utf8"    // a text frame that is not UTF-8: 1007
	EndTimeout    Ending = "timeout"     // aggregator.timeout.session passed: E_SESSION_TIMEOUT, 1011 (/echo: 1000)
	EndClosed     Ending = "closed"      // the browser closed the socket, or it broke
	EndShutdown   Ending = "shutdown"    // the server stops: 1001
	EndSlowClient Ending = "slow_client" // the browser does not read: send queue full, 1008
	EndTooLarge   Ending = "too_large"   // a message over aggregator.limit.request-size: 1009
	EndBug        Ending = "bug"         // a panic in the session's code: E_UNKNOWN, 1011
)

// Endings are every ending, in the order of the metric's help text.
var Endings = []Ending{EndDone, EndBadRequest, EndBadUTF8, EndTimeout, EndClosed, EndShutdown,
	EndSlowClient, EndTooLarge, EndBug}

// Outcome is how a task ended: the outcome label of aggregator_tasks_total.
// A task that failed ends with its error code (failure).
type Outcome string

// The outcomes that are not error codes.
const (
	OutcomeSuccess  Outcome = "SUCCESS"  // it sent its items (and SUCCESS, for an items task)
	OutcomeShutdown Outcome = "SHUTDOWN" // it was open when the server stopped
)

// failure is the outcome of a task that ended with code.
func failure(code aggregator.Code) Outcome { return Outcome(code) }

// left is what the tasks still open when a session ends this way count as
// (SPEC §4: a session that ends as a whole ends its unfinished tasks).
// "" for the endings that leave no task open.
func (e Ending) left() Outcome {
	switch e {
	case EndTimeout:
		return failure(aggregator.ESessionTimeout)
	case EndShutdown:
		return OutcomeShutdown
	case EndBug:
		return failure(aggregator.EUnknown)
	case EndBadUTF8, EndClosed, EndSlowClient, EndTooLarge:
		return failure(aggregator.ESessionClosed)
	}
	return ""
}

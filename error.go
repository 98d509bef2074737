package aggregator

import (
	"errors"
	"fmt"
	"strings"
)

// Code is one of the SPEC's error codes (SPEC §5): what the browser gets in
// "_error", what the log says, what `aggregator call` prints.
type Code string

// The error codes of SPEC §5.
const (
	ERequestJSON       Code = "E_REQUEST_JSON"       // the request is not a JSON object
	EIllegalRequest    Code = "E_ILLEGAL_REQUEST"    // a required request field is missing
	ESessionReused     Code = "E_SESSION_REUSED"     // a second request on one socket
	ESessionTimeout    Code = "E_SESSION_TIMEOUT"    // aggregator.timeout.session passed
	ESessionClosed     Code = "E_SESSION_CLOSED"     // the browser left (logged only)
	EScriptCancelled   Code = "E_SCRIPT_CANCELLED"   // the task's time ran out before PHP took it
	EScriptTimeout     Code = "E_SCRIPT_TIMEOUT"     // the task's time ran out while PHP ran it
	EScriptStart       Code = "E_SCRIPT_START"       // PHP cannot start with this configuration
	EScriptError       Code = "E_SCRIPT_ERROR"       // PHP failed the job, exited non-zero or died
	ESuppliersJSON     Code = "E_SUPPLIERS_JSON"     // suppliers output is not a JSON object
	ESuppliersResponse Code = "E_SUPPLIERS_RESPONSE" // suppliers output lacks its array
	EItemsJSON         Code = "E_ITEMS_JSON"         // items output is not a JSON object
	EItemsResponse     Code = "E_ITEMS_RESPONSE"     // items output lacks its array
	EUnknown           Code = "E_UNKNOWN"            // a bug
)

// Error is the one error type of every layer: a SPEC code, the detail for
// the log, and, for a \Aggregator\PublicError, the text the customer may see.
type Error struct {
	Code    Code
	Message string // for the log and `aggregator call`; never sent to the browser
	// Public is the message of a \Aggregator\PublicError the handler threw
	// (SPEC §15); the browser gets it as "_message". Empty otherwise.
	Public string
	// Limit names the protective limit that was hit, for
	// aggregator_limit_hits_total; empty for other errors.
	Limit Limit
}

// Limit names a protective limit (SPEC §13): the label of
// aggregator_limit_hits_total and the "limit" of its log line. Each is
// one configuration key, named in the comment.
type Limit string

// The protective limits.
const (
	LimitSessions       Limit = "sessions"         // aggregator.limit.sessions
	LimitConnections    Limit = "connections"      // aggregator.limit.connections
	LimitRequestSize    Limit = "request_size"     // aggregator.limit.request-size
	LimitOutputSize     Limit = "output_size"      // aggregator.limit.output-size
	LimitSessionTasks   Limit = "session_tasks"    // aggregator.limit.session-tasks
	LimitSendQueue      Limit = "send_queue"       // aggregator.limit.send-queue
	LimitSendQueueBytes Limit = "send_queue_bytes" // aggregator.limit.send-queue-bytes
)

// Limits are every limit, in the order of the metric's help text.
var Limits = []Limit{LimitSessions, LimitRequestSize, LimitOutputSize, LimitSessionTasks,
	LimitSendQueue, LimitSendQueueBytes, LimitConnections}

func (e *Error) Error() string {
	if e.Message == "" {
		return string(e.Code)
	}
	return string(e.Code) + ": " + e.Message
}

// Errorf returns an *Error with code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode is err's code: "" for nil, E_UNKNOWN for an error that is not an
// *Error (a bug: every layer returns *Error).
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EUnknown
}

// ErrorMessage is err's detail for the log, without the code.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	if err == nil {
		return ""
	}
	return err.Error()
}

// Join lists a vocabulary's words, comma-separated: the help text of the
// metric whose label they are.
func Join[T ~string](words []T) string {
	var b strings.Builder
	for i, w := range words {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(w))
	}
	return b.String()
}

// LimitHit is the limit err says was hit, or "".
func LimitHit(err error) Limit {
	var e *Error
	if errors.As(err, &e) {
		return e.Limit
	}
	return ""
}

// PublicMessage is the text of a \Aggregator\PublicError carried by err, or "".
func PublicMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Public
	}
	return ""
}

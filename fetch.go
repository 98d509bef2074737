package aggregator

import (
	"context"
	"time"
)

// FetchRequest is one HTTP call a translator asked for with \Aggregator\fetch()
// (SPEC §14).
type FetchRequest struct {
	Method  string
	URL     string
	Headers [][2]string // name, value; in the order PHP gave them
	Body    []byte
	// Timeout bounds the call; 0 means what is left of the job's time
	// (the context's deadline).
	Timeout time.Duration
	// Redirects is how many redirects the call follows (fetch()'s
	// 'redirects' option): nil is the default (20, PHP's own), 0 follows
	// none and the 3xx is the answer.
	Redirects *int
	// RedirectHeaders keeps the translator's headers on a redirect to
	// another host (fetch()'s 'redirect_headers' option). By default a
	// redirect that leaves the URL's scheme, host and port carries none of
	// them, so an API key never reaches a host the translator did not name.
	RedirectHeaders bool
	// NotFailures are statuses that are a normal answer of this call, never
	// a failure for the supplier's circuit breaker (fetch()'s 'not_failures'
	// option), e.g. a 404 or 500 a supplier answers for "no such part".
	NotFailures []int
}

// FetchResponse is a supplier's answer: any status, 4xx and 5xx included.
type FetchResponse struct {
	Status int
	// Headers are lower-case names; repeated headers are joined with ", ".
	Headers map[string]string
	Body    []byte
}

// FetchError is a call that got no answer; PHP throws it as
// \Aggregator\FetchException with Error() as the message.
type FetchError struct {
	Method string
	URL    string
	Cause  FetchCause
	Detail string
}

func (e *FetchError) Error() string {
	return e.Method + " " + e.URL + ": " + string(e.Cause) + ": " + e.Detail
}

// FetchCause says in one word why a call got no answer: the label of
// aggregator_fetch_errors_total, the "cause" of its log line, and the
// $cause of PHP's \Aggregator\FetchException (src/FetchException.php lists
// the same words, and exec mode's PHP uses them too).
type FetchCause string

// The causes of a call without an answer.
const (
	CauseRefused   FetchCause = "refused"   // the connection was refused
	CauseDNS       FetchCause = "dns"       // the host name does not resolve
	CauseTLS       FetchCause = "tls"       // the TLS handshake or certificate failed
	CauseTimeout   FetchCause = "timeout"   // no answer within the call's or the job's time
	CauseTooLarge  FetchCause = "too_large" // the body is over aggregator.limit.output-size
	CauseScheme    FetchCause = "scheme"    // not an http:// or https:// URL
	CauseCancelled FetchCause = "cancelled" // the job ended (its session, a shutdown) first
	CauseRedirects FetchCause = "redirects" // more redirects than a call follows
	CauseNetwork   FetchCause = "network"   // anything else between us and the supplier

	// A request that cannot be sent as the translator gave it (SPEC §14).
	CauseURL    FetchCause = "url"    // not a URL a request line can carry
	CauseMethod FetchCause = "method" // not GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS
	CauseHeader FetchCause = "header" // a header name or value a request cannot carry
	// CauseBlockedAddress: a link-local or metadata address nobody allowed (SPEC §14).
	CauseBlockedAddress FetchCause = "blocked_address"
	// The supplier limits (SPEC §18).
	CauseRateLimited FetchCause = "rate_limited" // over the supplier's quota
	CauseCircuitOpen FetchCause = "circuit_open" // the host's circuit breaker is open
)

// FetchCauses are the causes of fetch/'s own calls, in the order of the
// help text of aggregator_fetch_errors_total (the supplier limits count
// theirs in their own metrics).
var FetchCauses = []FetchCause{CauseRefused, CauseDNS, CauseTLS, CauseTimeout, CauseTooLarge,
	CauseScheme, CauseURL, CauseMethod, CauseHeader, CauseRedirects, CauseBlockedAddress, CauseCancelled, CauseNetwork}

// Fetcher performs translators' HTTP calls. Fetch returns a response for
// every answer the supplier gave, and a *FetchError when there was none.
type Fetcher interface {
	Fetch(ctx context.Context, req *FetchRequest) (*FetchResponse, error)
}

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
	// Cause is one word for metrics and logs: refused, dns, tls, timeout,
	// too_large, scheme, url, method, header, cancelled, redirects,
	// blocked_address, network; and, from the supplier limits (SPEC §18),
	// rate_limited and circuit_open.
	Cause  string
	Detail string
}

func (e *FetchError) Error() string {
	return e.Method + " " + e.URL + ": " + e.Cause + ": " + e.Detail
}

// Fetcher performs translators' HTTP calls. Fetch returns a response for
// every answer the supplier gave, and a *FetchError when there was none.
type Fetcher interface {
	Fetch(ctx context.Context, req *FetchRequest) (*FetchResponse, error)
}

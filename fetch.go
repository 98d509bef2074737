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
	// too_large, scheme, cancelled, redirects, network.
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

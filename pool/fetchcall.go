package pool

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/roadrunner-server/goridge/v3/pkg/frame"
	"github.com/theaspect/aggregator"
	"go.uber.org/zap"
)

// The fetch() calls a worker performs for its jobs (SPEC §14): a job's
// fetch frame becomes one call of the supervisor's aggregator.Fetcher, on
// its own goroutine, under the job's context; its answer goes back to PHP
// as a fetch frame with the same ids, unless the job is gone or being
// cancelled meanwhile.

// fetchHead is the JSON head of a fetch frame (src/Http/Request.php).
type fetchHead struct {
	Method  string      `json:"method"`
	URL     string      `json:"url"`
	Headers [][2]string `json:"headers"`
	Timeout *float64    `json:"timeout"`
	// Only when the call sets them (docs/PROTOCOL.md): how many redirects
	// to follow (absent: fetch's default), keep the headers on a redirect
	// to another host, statuses that do not count against the breaker.
	Redirects       *int  `json:"redirects"`
	RedirectHeaders bool  `json:"redirect_headers"`
	NotFailures     []int `json:"not_failures"`
}

// fetchCall is one fetch() call in flight, as /workers and the timeout's
// log line show it.
type fetchCall struct {
	id     uint32
	method string
	url    string
	host   string
	since  time.Time
}

// startFetch handles a job's fetch() call: [typeFetch, id, call, head bytes].
func (w *worker) startFetch(o []uint32, payload []byte) error {
	if len(o) < 4 || int(o[3]) > len(payload) {
		return fmt.Errorf("a malformed fetch frame: options %v, %d bytes", o, len(payload))
	}
	var head fetchHead
	if err := json.Unmarshal(payload[:o[3]], &head); err != nil {
		return fmt.Errorf("a fetch frame with a bad head: %v", err)
	}
	req := &aggregator.FetchRequest{Method: head.Method, URL: head.URL, Headers: head.Headers,
		Body: payload[o[3]:], Redirects: head.Redirects, RedirectHeaders: head.RedirectHeaders, NotFailures: head.NotFailures}
	if head.Timeout != nil && *head.Timeout > 0 {
		req.Timeout = time.Duration(*head.Timeout * float64(time.Second))
	}
	host := head.URL
	if u, err := url.Parse(head.URL); err == nil {
		host = u.Host
	}
	fc := &fetchCall{id: o[2], method: head.Method, url: head.URL, host: host, since: time.Now()}
	j := w.conv.fetchStarted(o[1], fc)
	if j == nil {
		return nil // the job is being cancelled
	}
	go w.perform(j, fc, req)
	return nil
}

// perform makes one fetch() call and sends its answer to the job.
func (w *worker) perform(j *inflight, fc *fetchCall, req *aggregator.FetchRequest) {
	var resp *aggregator.FetchResponse
	var err error
	if w.env.fetcher == nil {
		err = &aggregator.FetchError{Method: req.Method, URL: req.URL, Cause: "network", Detail: "this runner performs no HTTP calls"}
	} else {
		resp, err = w.env.fetcher.Fetch(j.ctx, req)
	}
	took := time.Since(fc.since)
	live := w.conv.fetchDone(j, fc)
	fe := w.logFetch(j, req, resp, err, live, took)
	if !live {
		return
	}
	_ = w.link.send(fetchAnswer(j.id, fc.id, req, resp, fe)) // a broken pipe ends the worker through readLoop
}

// logFetch logs how a call ended and returns its failure as PHP gets it
// (nil for an answer, whatever its status).
func (w *worker) logFetch(j *inflight, req *aggregator.FetchRequest, resp *aggregator.FetchResponse, err error,
	live bool, took time.Duration) *aggregator.FetchError {
	log := w.logger()
	var fe *aggregator.FetchError
	switch {
	case !live && j.ctx.Err() != nil:
		// The job's time ran out during the call: its own log line says so.
		return nil
	case errors.As(err, &fe):
		log.Warn("fetch failed", jobFields(j.job, zap.String("method", fe.Method), zap.String("url", fe.URL),
			zap.String("cause", string(fe.Cause)), zap.String("error", fe.Detail), zap.Duration("took", took))...)
	case err != nil:
		fe = &aggregator.FetchError{Method: req.Method, URL: req.URL, Cause: "network", Detail: err.Error()}
		log.Warn("fetch failed", jobFields(j.job, zap.String("method", req.Method), zap.String("url", req.URL),
			zap.String("cause", string(fe.Cause)), zap.Error(err), zap.Duration("took", took))...)
	case resp.Status >= 400:
		log.Info("fetch answered with an error status", jobFields(j.job, zap.String("method", req.Method),
			zap.String("url", req.URL), zap.Int("status", resp.Status), zap.Duration("took", took))...)
	default:
		if ce := log.Check(zap.DebugLevel, "fetch answered"); ce != nil {
			ce.Write(jobFields(j.job, zap.String("method", req.Method), zap.String("url", req.URL),
				zap.Int("status", resp.Status), zap.Int("bytes", len(resp.Body)), zap.Duration("took", took))...)
		}
	}
	return fe
}

// fetchAnswer is the frame that answers call of job id: the failure fe
// (cause and message), or resp.
func fetchAnswer(id, call uint32, req *aggregator.FetchRequest, resp *aggregator.FetchResponse, fe *aggregator.FetchError) *frame.Frame {
	if fe != nil {
		b, _ := json.Marshal(map[string]string{"cause": string(fe.Cause), "message": fe.Error()})
		return newFrame(flagRaw|flagError, b, typeFetch, id, call, uint32(len(b)))
	}
	head, _ := json.Marshal(struct {
		Status  int               `json:"status"`
		Headers map[string]string `json:"headers"`
		URL     string            `json:"url"`
	}{resp.Status, resp.Headers, req.URL})
	return newFrame(flagRaw, append(head, resp.Body...), typeFetch, id, call, uint32(len(head)))
}

// Package fetch performs translators' supplier calls (\Aggregator\fetch(),
// SPEC §14) with net/http: one shared transport with keep-alive connections
// and a per-host connection limit for every worker, the job's deadline as
// the call's, redirects followed as PHP follows them, and the body capped at
// aggregator.limit.output-size. It implements aggregator.Fetcher.
package fetch

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/theaspect/aggregator"
)

// Defaults of a Client.
const (
	// MaxRedirects is how many redirects a call follows unless it says:
	// PHP's own default.
	MaxRedirects = 20
	// DefaultTimeout bounds a call when neither the call nor its job says.
	DefaultTimeout = 30 * time.Second
	// userAgent is sent unless the translator sets its own.
	userAgent = "aggregator-fetch/1"
)

// Config configures a Client.
type Config struct {
	MaxBody         int // bytes of a response body; 0 = no limit
	MaxConnsPerHost int // connections to one host at once (dialing, in use, idle); 0 = no limit
	// RedirectLinkLocal lets redirects reach link-local and metadata
	// addresses (169.254.0.0/16, fe80::/10, fd00:ec2::254), refused by
	// default (aggregator.fetch.redirect-link-local). A translator's own
	// URL may always name them.
	RedirectLinkLocal bool
	// Resolver resolves host names; nil is the system's.
	Resolver   *net.Resolver
	Registerer prometheus.Registerer
}

// Client performs calls; it is safe for use by every worker at once.
type Client struct {
	cfg     Config
	http    *http.Client
	metrics *metrics
}

// New returns a client with its own transports.
func New(cfg Config) *Client {
	dialer := net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Resolver: cfg.Resolver}
	var transport http.RoundTripper = newTransport(cfg, &dialer)
	if !cfg.RedirectLinkLocal {
		transport = hops{direct: transport, redirected: newTransport(cfg, guardedDialer(dialer))}
	}
	c := &Client{cfg: cfg, metrics: newMetrics(cfg.Registerer)}
	c.http = &http.Client{Transport: transport, CheckRedirect: checkRedirect(cfg.RedirectLinkLocal)}
	return c
}

func newTransport(cfg Config, dialer *net.Dialer) *http.Transport {
	idle := cfg.MaxConnsPerHost
	if idle <= 0 {
		idle = 256
	}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          0, // bounded per host below
		MaxIdleConnsPerHost:   idle,
		MaxConnsPerHost:       cfg.MaxConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// Fetch performs one call. Any answer is a response, 4xx and 5xx
// included; no answer is a *aggregator.FetchError.
func (c *Client) Fetch(ctx context.Context, r *aggregator.FetchRequest) (*aggregator.FetchResponse, error) {
	start := time.Now()
	fail := func(cause aggregator.FetchCause, format string, args ...any) error {
		c.metrics.failed(cause)
		return &aggregator.FetchError{Method: r.Method, URL: r.URL, Cause: cause, Detail: fmt.Sprintf(format, args...)}
	}
	method, u, err := checkRequest(r)
	if err != nil {
		return nil, fail(err.cause, "%s", err.detail)
	}
	timeout := r.Timeout
	if _, ok := ctx.Deadline(); !ok && timeout <= 0 {
		timeout = DefaultTimeout
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	policy := &redirectPolicy{max: MaxRedirects, keepHeaders: r.RedirectHeaders}
	if r.Redirects != nil {
		policy.max = *r.Redirects
	}
	var body io.Reader
	if len(r.Body) > 0 {
		body = bytes.NewReader(r.Body)
	}
	req, rerr := http.NewRequestWithContext(context.WithValue(ctx, policyKey{}, policy), method, u.String(), body)
	if rerr != nil {
		return nil, fail(aggregator.CauseURL, "%v", rerr)
	}
	for _, h := range r.Headers {
		req.Header.Add(h[0], h[1])
		policy.translator = append(policy.translator, h[0])
		policy.referer = policy.referer || strings.EqualFold(h[0], "Referer")
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", userAgent)
	}
	done := c.metrics.started()
	defer done()
	resp, rerr := c.http.Do(req)
	if rerr != nil {
		cause := classify(ctx, rerr)
		return nil, fail(cause, "%s", describe(cause, rerr, timeout, u.Hostname(), policy.max))
	}
	defer resp.Body.Close()
	data, rerr := readBody(resp.Body, c.cfg.MaxBody)
	if rerr != nil {
		if errors.Is(rerr, errBodyTooLarge) {
			return nil, fail(aggregator.CauseTooLarge, "the body is over %d bytes (aggregator.limit.output-size)", c.cfg.MaxBody)
		}
		cause := classify(ctx, rerr)
		return nil, fail(cause, "reading the body: %s", describe(cause, rerr, timeout, u.Hostname(), policy.max))
	}
	c.metrics.answered(u.Host, resp.StatusCode, time.Since(start))
	out := &aggregator.FetchResponse{Status: resp.StatusCode, Headers: make(map[string]string, len(resp.Header)), Body: data}
	for name, values := range resp.Header {
		out.Headers[strings.ToLower(name)] = strings.Join(values, ", ")
	}
	return out, nil
}

var errBodyTooLarge = errors.New("body too large")

// readBody reads a body of at most max bytes (0: no limit).
func readBody(r io.Reader, max int) ([]byte, error) {
	if max <= 0 {
		return io.ReadAll(r)
	}
	data, err := io.ReadAll(io.LimitReader(r, int64(max)+1))
	if err != nil {
		return nil, err
	}
	if len(data) > max {
		return nil, errBodyTooLarge
	}
	return data, nil
}

// classify names why a call got no answer, in one word.
func classify(ctx context.Context, err error) aggregator.FetchCause {
	var dns *net.DNSError
	var certErr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var header tls.RecordHeaderError
	switch {
	case errors.Is(err, errTooManyRedirects):
		return aggregator.CauseRedirects
	case errors.Is(err, errBlockedAddress):
		return aggregator.CauseBlockedAddress
	case errors.Is(ctx.Err(), context.DeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return aggregator.CauseTimeout
	case errors.Is(ctx.Err(), context.Canceled):
		return aggregator.CauseCancelled
	case errors.As(err, &dns):
		return aggregator.CauseDNS
	case errors.Is(err, syscall.ECONNREFUSED):
		return aggregator.CauseRefused
	case errors.As(err, &certErr), errors.As(err, &unknownCA), errors.As(err, &hostErr),
		errors.As(err, &invalid), errors.As(err, &header), strings.Contains(err.Error(), "tls: "):
		return aggregator.CauseTLS
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return aggregator.CauseTimeout
	}
	return aggregator.CauseNetwork
}

// describe is the detail of a failed call for PHP's FetchException; the
// causes both modes can tell are worded as exec mode's PHP words them
// (src/Http/StreamTransport.php), so a translator sees the same message.
func describe(cause aggregator.FetchCause, err error, timeout time.Duration, host string, redirects int) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	switch cause {
	case aggregator.CauseTimeout:
		if timeout > 0 {
			return "no answer within " + strconv.FormatFloat(timeout.Seconds(), 'f', -1, 64) + " s"
		}
		return "no answer before the job's time ran out"
	case aggregator.CauseCancelled:
		return "the job was cancelled"
	case aggregator.CauseRedirects:
		return fmt.Sprintf("more than %d redirects", redirects)
	case aggregator.CauseBlockedAddress:
		var be *blockedError
		if errors.As(err, &be) {
			return be.Error()
		}
	case aggregator.CauseRefused:
		return "connection refused"
	case aggregator.CauseDNS:
		return "cannot resolve " + host
	}
	return err.Error()
}

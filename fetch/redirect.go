package fetch

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// redirectPolicy is what one call allows its redirects; it travels in the
// request's context because http.Client has one CheckRedirect for all calls.
type redirectPolicy struct {
	max         int  // redirects to follow; 0 = none, the 3xx is the answer
	keepHeaders bool // the translator's headers go to other hosts too
	// translator are the header names the translator set, which a
	// redirect to another host drops.
	translator []string
	referer    bool // the translator set a Referer of its own
}

type policyKey struct{}

// errTooManyRedirects marks the end of a redirect chain too long.
var errTooManyRedirects = errors.New("too many redirects")

// errBlockedAddress is a redirect to a link-local or metadata address.
var errBlockedAddress = errors.New("a redirect to a link-local or metadata address")

// blockedError names the address a redirect may not reach.
type blockedError struct{ addr string }

func (e *blockedError) Error() string {
	return "a redirect to " + e.addr + ", a link-local or metadata address, is refused (aggregator.fetch.redirect-link-local)"
}

func (e *blockedError) Is(target error) bool { return target == errBlockedAddress }

// checkRedirect is the client's CheckRedirect: it applies the call's
// policy to the next hop, whose headers net/http has already copied from
// the first request.
func checkRedirect(allowLinkLocal bool) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		p, _ := req.Context().Value(policyKey{}).(*redirectPolicy)
		if p == nil {
			p = &redirectPolicy{max: MaxRedirects}
		}
		if p.max <= 0 {
			return http.ErrUseLastResponse
		}
		if len(via) > p.max {
			return errTooManyRedirects
		}
		if !allowLinkLocal {
			// A literal address is refused here, before any dial; a name
			// is checked when it is dialled (guardDial), since what it
			// resolves to can change between now and then.
			if ip, err := netip.ParseAddr(strings.Trim(req.URL.Hostname(), "[]")); err == nil && blocked(ip) {
				return &blockedError{addr: req.URL.Host}
			}
		}
		if !p.referer {
			// net/http adds the previous URL, which may carry an API key in
			// its query; PHP sends no Referer on a redirect.
			req.Header.Del("Referer")
		}
		if !p.keepHeaders && leftOrigin(req, via) {
			for _, name := range p.translator {
				req.Header.Del(name)
			}
			req.Header.Set("User-Agent", userAgent)
		}
		return nil
	}
}

// leftOrigin tells whether the chain so far (via, then req) has been
// anywhere other than the first request's scheme, host and port. Once it
// has, it stays "left": a host the chain passed through chose the rest.
func leftOrigin(req *http.Request, via []*http.Request) bool {
	first := via[0].URL
	for _, r := range via[1:] {
		if !sameOrigin(first, r.URL) {
			return true
		}
	}
	return !sameOrigin(first, req.URL)
}

// sameOrigin is RFC 6454's origin, as curl decides where credentials may
// go: the same scheme, host (case-insensitive) and port. http -> https on
// the same name is another origin too (another port).
func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) &&
		strings.EqualFold(strings.TrimSuffix(a.Hostname(), "."), strings.TrimSuffix(b.Hostname(), ".")) &&
		effectivePort(a) == effectivePort(b)
}

func effectivePort(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "https") {
		return "443"
	}
	return "80"
}

// metadataV6 is AWS's IPv6 instance metadata address (its IPv4 one,
// 169.254.169.254, is link-local).
var metadataV6 = netip.MustParseAddr("fd00:ec2::254")

// blocked tells whether a redirect may not reach ip: link-local addresses
// (169.254.0.0/16, fe80::/10), where clouds serve instance metadata and
// credentials, and the metadata addresses outside those ranges.
func blocked(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip == metadataV6
}

// guardDial is the Control of the dialer that redirected hops use: it sees
// the address actually connected to, after name resolution, so a name that
// resolves to a metadata address is refused before a packet is sent.
func guardDial(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil // not an IP socket address: nothing to check
	}
	if blocked(ap.Addr()) {
		return &blockedError{addr: address}
	}
	return nil
}

// hops sends a call's first request through direct and every redirected
// hop (net/http sets Request.Response on those) through redirected, whose
// dialer has guardDial. Two transports, so a connection dialled for a
// translator's own URL is never reused by a redirect that was not checked.
type hops struct {
	direct, redirected http.RoundTripper
}

func (h hops) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Response != nil {
		return h.redirected.RoundTrip(r)
	}
	return h.direct.RoundTrip(r)
}

// CloseIdleConnections closes both transports' idle connections.
func (h hops) CloseIdleConnections() {
	for _, t := range []http.RoundTripper{h.direct, h.redirected} {
		if c, ok := t.(interface{ CloseIdleConnections() }); ok {
			c.CloseIdleConnections()
		}
	}
}

// guardedDialer returns d with guardDial as its Control.
func guardedDialer(d net.Dialer) *net.Dialer {
	d.Control = guardDial
	return &d
}

package fetch

import (
	"context"
	"encoding/binary"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/theaspect/aggregator"
)

// echoServer answers every request with the headers it got, one
// "Name: value" per line, on addr (127.0.0.2:0 is another host than
// 127.0.0.1 even on the same port).
func echoServer(t *testing.T, addr string) *httptest.Server {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if loc := r.URL.Query().Get("to"); loc != "" {
			http.Redirect(w, r, loc, http.StatusFound)
			return
		}
		for name, values := range r.Header {
			for _, v := range values {
				_, _ = w.Write([]byte(name + ": " + v + "\n"))
			}
		}
	})}}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// redirectVia is a URL of from that redirects to target.
func redirectVia(from *httptest.Server, target string) string {
	return from.URL + "/?to=" + url.QueryEscape(target)
}

func intp(n int) *int { return &n }

// TestRedirectHeaders: a redirect to another scheme, host or port carries
// none of the translator's headers (X-Api-Key, Authorization, Cookie, its
// User-Agent) and no Referer; the same origin keeps them; RedirectHeaders
// keeps them everywhere.
func TestRedirectHeaders(t *testing.T) {
	t.Parallel()
	a := echoServer(t, "127.0.0.1:0")
	samePortOther := echoServer(t, "127.0.0.1:0")
	otherAddr := echoServer(t, "127.0.0.2:0")
	c := New(Config{})
	headers := [][2]string{{"X-Api-Key", "SECRET"}, {"Authorization", "Bearer SECRET"}, {"Cookie", "s=SECRET"}, {"User-Agent", "shop/2"}}
	get := func(u string, keep bool) string {
		t.Helper()
		resp, err := c.Fetch(context.Background(), &aggregator.FetchRequest{Method: "GET", URL: u, Headers: headers, RedirectHeaders: keep})
		if err != nil || resp.Status != 200 {
			t.Fatalf("GET %s: %+v %v", u, resp, err)
		}
		return string(resp.Body)
	}
	for name, target := range map[string]string{
		"another address":                otherAddr.URL + "/x",
		"another port":                   samePortOther.URL + "/x",
		"a chain back to the first host": redirectVia(otherAddr, a.URL+"/x"),
	} {
		got := get(redirectVia(a, target), false)
		if strings.Contains(got, "SECRET") || strings.Contains(got, "shop/2") || strings.Contains(got, "Referer") {
			t.Errorf("%s: the translator's headers followed the redirect:\n%s", name, got)
		}
		if !strings.Contains(got, "User-Agent: "+userAgent) {
			t.Errorf("%s: no default User-Agent:\n%s", name, got)
		}
		if got := get(redirectVia(a, target), true); !strings.Contains(got, "X-Api-Key: SECRET") || !strings.Contains(got, "User-Agent: shop/2") {
			t.Errorf("%s with RedirectHeaders: the headers did not follow:\n%s", name, got)
		}
	}
	if got := get(redirectVia(a, "/x"), false); !strings.Contains(got, "X-Api-Key: SECRET") || !strings.Contains(got, "Cookie: s=SECRET") {
		t.Errorf("a redirect on the same host lost the translator's headers:\n%s", got)
	}
}

// TestRedirectCount: Redirects 0 answers the 3xx itself; N follows N and
// fails the N+1st with cause redirects.
func TestRedirectCount(t *testing.T) {
	t.Parallel()
	a := echoServer(t, "127.0.0.1:0")
	c := New(Config{})
	chain := redirectVia(a, redirectVia(a, a.URL+"/end"))
	resp, err := c.Fetch(context.Background(), &aggregator.FetchRequest{URL: chain, Redirects: intp(0)})
	if err != nil || resp.Status != http.StatusFound || !strings.Contains(resp.Headers["location"], "to=") {
		t.Errorf("Redirects 0: %+v %v, want the 302 itself", resp, err)
	}
	if resp, err := c.Fetch(context.Background(), &aggregator.FetchRequest{URL: chain, Redirects: intp(2)}); err != nil || resp.Status != 200 {
		t.Errorf("Redirects 2 on a chain of 2: %+v %v", resp, err)
	}
	_, err = c.Fetch(context.Background(), &aggregator.FetchRequest{URL: chain, Redirects: intp(1)})
	if cause(t, err) != "redirects" || !strings.Contains(err.Error(), "more than 1 redirects") {
		t.Errorf("Redirects 1 on a chain of 2: %v", err)
	}
}

// TestRedirectBlocked: a redirect to a link-local or metadata address,
// literal or a name that resolves to one, is refused before any packet
// goes there (cause blocked_address).
func TestRedirectBlocked(t *testing.T) {
	t.Parallel()
	a := echoServer(t, "127.0.0.1:0")
	dns := fakeDNS(t, net.IPv4(169, 254, 169, 254))
	c := New(Config{Resolver: dns})
	for _, target := range []string{"http://169.254.169.254/latest/meta-data/", "http://[fe80::1]:8080/", "http://[fd00:ec2::254]/",
		"http://[::ffff:169.254.1.1]/", "http://metadata.test:81/"} {
		_, err := c.Fetch(context.Background(), &aggregator.FetchRequest{URL: redirectVia(a, target)})
		if cause(t, err) != "blocked_address" || !strings.Contains(err.Error(), "aggregator.fetch.redirect-link-local") {
			t.Errorf("a redirect to %s: %v, want blocked_address", target, err)
		}
	}
	// Loopback is not refused: only link-local and metadata addresses are.
	if resp, err := c.Fetch(context.Background(), &aggregator.FetchRequest{URL: redirectVia(a, a.URL+"/ok")}); err != nil || resp.Status != 200 {
		t.Errorf("a redirect to loopback: %+v %v", resp, err)
	}
	allow := checkRedirect(true)
	req, _ := http.NewRequest("GET", "http://169.254.169.254/", nil)
	first, _ := http.NewRequest("GET", a.URL, nil)
	if err := allow(req, []*http.Request{first}); err != nil {
		t.Errorf("RedirectLinkLocal: %v", err)
	}
}

// fakeDNS is a DNS server on 127.0.0.1 that answers every A question with
// ip and every other question with no records; the resolver it returns
// asks only it.
func fakeDNS(t *testing.T, ip net.IP) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if reply := dnsAnswer(buf[:n], ip.To4()); reply != nil {
				_, _ = pc.WriteTo(reply, from)
			}
		}
	}()
	addr := pc.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
}

// dnsAnswer is the reply to query (RFC 1035 §4.1): its question, and an A
// record of ip when it asks for one.
func dnsAnswer(query []byte, ip net.IP) []byte {
	if len(query) < 12 {
		return nil
	}
	end := 12
	for end < len(query) && query[end] != 0 {
		end += int(query[end]) + 1
	}
	end += 5 // the name's 0, QTYPE, QCLASS
	if end > len(query) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(query[end-4:])
	reply := append([]byte{}, query[:end]...)
	binary.BigEndian.PutUint16(reply[2:], 0x8180) // a response, recursion desired and available
	binary.BigEndian.PutUint16(reply[6:], 0)      // answers
	binary.BigEndian.PutUint16(reply[8:], 0)      // authority
	binary.BigEndian.PutUint16(reply[10:], 0)     // additional (the query's EDNS record is not echoed)
	if qtype == 1 {
		binary.BigEndian.PutUint16(reply[6:], 1)
		reply = append(reply, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4)
		reply = append(reply, ip...)
	}
	return reply
}

// TestRequestChecks: a method outside SPEC §14's list, a control character
// in the URL or a header each have their own cause; a URL with spaces is
// sent encoded.
func TestRequestChecks(t *testing.T) {
	t.Parallel()
	var line string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { line = r.Method + " " + r.RequestURI }))
	defer srv.Close()
	c := New(Config{})
	for _, tc := range []struct{ method, url, cause, says string }{
		{"CONNECT", srv.URL, "method", `"CONNECT" is not one of GET`},
		{"TRACE", srv.URL, "method", `"TRACE"`},
		{"FETCH", srv.URL, "method", `"FETCH"`},
		{"GET", srv.URL + "/a\r\nX-Injected: 1", "url", `control character ("\r") at byte`},
		{"GET", srv.URL + "/a\x00", "url", `("\x00")`},
		{"GET", "ftp://example.com/", "scheme", "only http:// and https://"},
	} {
		_, err := c.Fetch(context.Background(), &aggregator.FetchRequest{Method: tc.method, URL: tc.url})
		if cause(t, err) != tc.cause || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s %q: %v, want cause %s saying %s", tc.method, tc.url, err, tc.cause, tc.says)
		}
	}
	_, err := c.Fetch(context.Background(), &aggregator.FetchRequest{URL: srv.URL, Headers: [][2]string{{"X-A", "1\r\nX-B: 2"}}})
	if cause(t, err) != "header" {
		t.Errorf("a header with CRLF: %v", err)
	}
	resp, err := c.Fetch(context.Background(), &aggregator.FetchRequest{Method: "patch", URL: srv.URL + "/a b/c?q=x y&r=\"é\""})
	if err != nil || resp.Status != 200 || line != "PATCH /a%20b/c?q=x%20y&r=%22%C3%A9%22" {
		t.Errorf("a URL with spaces: %+v %v, the server got %q", resp, err, line)
	}
}

package fetch

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/theaspect/aggregator"
)

// methods are the methods a translator may call with (SPEC §14): CONNECT
// and TRACE are not supplier calls, and anything else is a typo.
var methods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

// requestError is why a call cannot be sent at all.
type requestError struct {
	cause  aggregator.FetchCause
	detail string
}

// checkRequest refuses what cannot be sent and returns the method and the
// URL to send: the method upper-cased ("" is GET), the URL with what a
// request line may not carry (spaces, quotes, bytes over 0x7f) in its
// query percent-encoded, as a browser sends it (the path is net/url's).
func checkRequest(r *aggregator.FetchRequest) (string, *url.URL, *requestError) {
	method := strings.ToUpper(r.Method)
	if method == "" {
		method = http.MethodGet
	}
	if !methods[method] {
		return "", nil, &requestError{aggregator.CauseMethod, "the method " + strconv.Quote(r.Method) +
			" is not one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"}
	}
	if i := strings.IndexFunc(r.URL, isCtl); i >= 0 {
		return "", nil, &requestError{aggregator.CauseURL, "the URL has a control character (" + strconv.Quote(r.URL[i:i+1]) + ") at byte " + strconv.Itoa(i)}
	}
	u, err := url.Parse(strings.ReplaceAll(r.URL, " ", "%20"))
	if err != nil {
		return "", nil, &requestError{aggregator.CauseURL, "not a URL: " + err.Error()}
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", nil, &requestError{aggregator.CauseScheme, "only http:// and https:// URLs can be fetched"}
	}
	u.RawQuery = escapeQuery(u.RawQuery)
	for _, h := range r.Headers {
		if !validHeaderName(h[0]) || strings.IndexFunc(h[1], isCtlNoTab) >= 0 {
			return "", nil, &requestError{aggregator.CauseHeader, "the header " + strconv.Quote(h[0]) + " has a character a header may not carry"}
		}
	}
	return method, u, nil
}

func isCtl(r rune) bool      { return r < 0x20 || r == 0x7f }
func isCtlNoTab(r rune) bool { return r != '\t' && isCtl(r) }

// validHeaderName tells whether name is an RFC 9110 token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// escapeQuery percent-encodes the bytes of a raw query that a request line
// may not carry; what is already encoded stays as it is.
func escapeQuery(q string) string {
	const hex = "0123456789ABCDEF"
	var b []byte // nil until the first byte that needs encoding
	for i := 0; i < len(q); i++ {
		c := q[i]
		ok := c > ' ' && c < 0x7f && strings.IndexByte("\"<>\\^`{|}", c) < 0
		switch {
		case ok && b == nil:
		case ok:
			b = append(b, c)
		default:
			if b == nil {
				b = append(make([]byte, 0, len(q)+8), q[:i]...)
			}
			b = append(b, '%', hex[c>>4], hex[c&15])
		}
	}
	if b == nil {
		return q
	}
	return string(b)
}

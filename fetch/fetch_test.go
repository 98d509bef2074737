package fetch

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/theaspect/aggregator"
)

// cause is the FetchError cause of err, or "" for a response.
func cause(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	var fe *aggregator.FetchError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v is not a FetchError", err)
	}
	return string(fe.Cause)
}

// TestRedirects: redirects are followed as PHP follows them (a POST
// answered 303 goes on as a GET), at most MaxRedirects of them.
func TestRedirects(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/loop", http.StatusFound) })
	mux.HandleFunc("/post", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/method", http.StatusSeeOther) })
	mux.HandleFunc("/method", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(r.Method)) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := New(Config{})
	resp, err := c.Fetch(context.Background(), &aggregator.FetchRequest{Method: "POST", URL: srv.URL + "/post", Body: []byte("x")})
	if err != nil || resp.Status != 200 || string(resp.Body) != "GET" {
		t.Errorf("POST /post: %+v %v, want the GET answer of /method", resp, err)
	}
	_, err = c.Fetch(context.Background(), &aggregator.FetchRequest{Method: "GET", URL: srv.URL + "/loop"})
	if cause(t, err) != "redirects" || !strings.Contains(err.Error(), "more than 20 redirects") {
		t.Errorf("a redirect loop: %v", err)
	}
}

// TestNoAnswerCauses: TLS, a body over the limit, the call's own timeout
// and the job's deadline each get their cause, and are counted.
func TestNoAnswerCauses(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(make([]byte, 101)) })
	mux.HandleFunc("/exact", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(make([]byte, 100)) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	})
	plain := httptest.NewServer(mux)
	defer plain.Close()
	tlsSrv := httptest.NewTLSServer(mux) // a certificate nobody trusts
	defer tlsSrv.Close()
	reg := prometheus.NewRegistry()
	c := New(Config{MaxBody: 100, Registerer: reg})
	get := func(ctx context.Context, url string, timeout time.Duration) error {
		_, err := c.Fetch(ctx, &aggregator.FetchRequest{Method: "GET", URL: url, Timeout: timeout})
		return err
	}
	if err := get(context.Background(), plain.URL+"/exact", 0); err != nil {
		t.Errorf("a body at the limit: %v", err)
	}
	for want, err := range map[string]error{
		"too_large": get(context.Background(), plain.URL+"/big", 0),
		"tls":       get(context.Background(), tlsSrv.URL+"/exact", 0),
		"timeout":   get(context.Background(), plain.URL+"/slow", 100*time.Millisecond),
		"scheme":    get(context.Background(), "file:///etc/passwd", 0),
	} {
		if got := cause(t, err); got != want {
			t.Errorf("cause %q (%v), want %q", got, err, want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := get(ctx, plain.URL+"/slow", 0); cause(t, err) != "timeout" || !strings.Contains(err.Error(), "before the job's time ran out") {
		t.Errorf("the job's deadline: %v", err)
	}
	for _, c := range []string{"too_large", "tls", "timeout", "scheme"} {
		if n := errorsCounted(t, reg, c); n < 1 {
			t.Errorf("aggregator_fetch_errors_total{cause=%q} = %v", c, n)
		}
	}
}

// errorsCounted reads aggregator_fetch_errors_total{cause} from reg.
func errorsCounted(t *testing.T, reg *prometheus.Registry, cause string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "aggregator_fetch_errors_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == cause {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestFetchParity: one translator calling \Aggregator\fetch() gives the
// same answers and exceptions in worker mode (the aggregator makes the
// call), in exec mode (PHP makes it) and through `aggregator call`.
func TestFetchParity(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("/parts", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Supplier", "demo")
		fmt.Fprintf(w, `{"q":%q,"key":%q}`, r.URL.RawQuery, r.Header.Get("X-Api-Key"))
	})
	mux.HandleFunc("/busy", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, "try later")
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	refused := "http://" + ln.Addr().String() + "/"
	ln.Close()

	type answer struct {
		Status  int               `json:"status"`
		Body    string            `json:"body"`
		Headers map[string]string `json:"headers"`
		Cause   string            `json:"cause"`
		Message string            `json:"message"`
	}
	inputs := map[string]string{
		"ok":      fmt.Sprintf(`{"url":%q,"options":{"headers":{"X-Api-Key":"k"}}}`, srv.URL+"/parts?article=3310"),
		"503":     fmt.Sprintf(`{"url":%q}`, srv.URL+"/busy"),
		"several": fmt.Sprintf(`{"all":{"a":%q,"b":%q,"c":"ftp://x/","d":[%q,{"timeout":0.3}]}}`, srv.URL+"/parts?n=1", refused, srv.URL+"/slow"),
	}
	modes := map[string][]string{
		"worker": {"-Daggregator.pool.mode=worker", "-Daggregator.worker.handlers=pool/testdata/fetch.php"},
		"exec":   {"-Daggregator.pool.mode=exec", "-Daggregator.script.items=php integration/testdata/fetch_items.php"},
	}
	got := map[string]map[string]string{}
	for mode, args := range modes {
		got[mode] = map[string]string{}
		for name, in := range inputs {
			r := dkCall(t, nil, append(args, "call", "--json", "items", in)...)
			var rep struct {
				Output string `json:"output"`
				Code   string `json:"code"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
				t.Fatalf("%s %s: %v\n%s", mode, name, err, r)
			}
			// The answers, without what the two HTTP stacks add (Date, Connection, ...).
			var out map[string]answer
			if name == "several" {
				_ = json.Unmarshal([]byte(rep.Output), &out)
			} else {
				var one answer
				_ = json.Unmarshal([]byte(rep.Output), &one)
				out = map[string]answer{"": one}
			}
			for k, a := range out {
				a.Headers = map[string]string{"x-supplier": a.Headers["x-supplier"]}
				out[k] = a
			}
			b, _ := json.Marshal(out)
			got[mode][name] = rep.Code + " " + string(b)
		}
	}
	for name := range inputs {
		if got["worker"][name] != got["exec"][name] {
			t.Errorf("%s differs:\n worker %s\n exec   %s", name, got["worker"][name], got["exec"][name])
		}
	}
	for name, want := range map[string][]string{
		"ok":      {`"status":200`, `"x-supplier":"demo"`, `\"key\":\"k\"`},
		"503":     {`"status":503`, `"body":"try later"`},
		"several": {`"cause":"refused"`, `"cause":"scheme"`, `"cause":"timeout"`, "no answer within 0.3 s"},
	} {
		for _, w := range want {
			if !strings.Contains(got["worker"][name], w) {
				t.Errorf("%s: %s lacks %s", name, got["worker"][name], w)
			}
		}
	}
}

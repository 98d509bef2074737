package limit

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/theaspect/aggregator"
	"github.com/theaspect/aggregator/fetch"
)

// BenchmarkFetch compares a call through the client alone with the same
// call through a Limiter (the defaults: a cap and a breaker; with a quota
// in memory; with the quota in Redis), against a local HTTP server, so
// the difference is the limiter's cost per call.
func BenchmarkFetch(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) }))
	defer srv.Close()
	client := fetch.New(fetch.Config{})
	quota := Config{Suppliers: map[string]Supplier{"s": {Hosts: []string{"127.0.0.1"}, Policy: Policy{Rate: "1000000000/s"}}}}
	cases := []struct {
		name string
		cfg  *Config
	}{{"client", nil}, {"limiter", &Config{}}, {"limiter-quota", &quota}}
	if testing.Short() {
		cases = cases[:2]
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var f aggregator.Fetcher = client
			if c.cfg != nil {
				l, err := New(client, *c.cfg, Options{})
				if err != nil {
					b.Fatal(err)
				}
				f = l
			}
			benchFetch(b, f, srv.URL)
		})
	}
	b.Run("limiter-quota-redis", func(b *testing.B) {
		rs := startRedisB(b)
		cfg := quota
		cfg.Redis = RedisConfig{Address: rs}
		l, err := New(client, cfg, Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		benchFetch(b, l, srv.URL)
	})
}

func benchFetch(b *testing.B, f aggregator.Fetcher, url string) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req := &aggregator.FetchRequest{Method: "GET", URL: url}
		for pb.Next() {
			if _, err := f.Fetch(context.Background(), req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// answer is a Fetcher that answers 200 at once: BenchmarkOverhead measures
// the limiter alone, which the HTTP round trip of BenchmarkFetch drowns on
// a shared machine.
type answer struct{}

func (answer) Fetch(context.Context, *aggregator.FetchRequest) (*aggregator.FetchResponse, error) {
	return &aggregator.FetchResponse{Status: 200}, nil
}

// BenchmarkOverhead is the limiter's own cost per call: defaults (cap and
// breaker), with a quota in memory holding every call of its window.
func BenchmarkOverhead(b *testing.B) {
	quota := Config{Suppliers: map[string]Supplier{"s": {Hosts: []string{"a.example"}, Policy: Policy{Rate: "1000000000/s"}}}}
	for _, c := range []struct {
		name string
		cfg  Config
	}{{"defaults", Config{}}, {"quota", quota}} {
		b.Run(c.name, func(b *testing.B) {
			l, err := New(answer{}, c.cfg, Options{})
			if err != nil {
				b.Fatal(err)
			}
			benchFetch(b, l, "https://a.example/search?code=3310")
		})
	}
}

// Command demo-supplier is a fake supplier API with real latency, to try
// translators that call suppliers through \Aggregator\fetch() under load
// (`make run-example` starts it beside the aggregator). It answers the API
// of script/example/fake_supplier.php (which PHP tests serve with php -S,
// one request at a time) concurrently, after a uniform random delay:
//
//	GET /search?article=A&brand=B&analogs=1   200: two parts of A, two crosses with analogs=1
//	                                          (article "empty": no parts; "blocked": a 200 error answer)
//	GET /slow/search?...                      never answers within a job's time (60 s)
//	GET /fail/search?...                      500 with a JSON error
//	GET /notjson/search?...                   200 with an HTML page
//	without an X-Api-Key header               401
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8090", "listen address")
	latency := flag.Duration("latency", time.Second, "answers wait a uniform random 0..latency, like real parts APIs")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("demo-supplier: %v", err)
	}
	s := &supplier{latency: *latency}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
		<-sigs
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	log.Printf("demo-supplier: listening on http://%s, answers within 0..%v", ln.Addr(), *latency)
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		log.Fatalf("demo-supplier: %v", err)
	}
	log.Printf("demo-supplier: served %d calls, at most %d at once", s.served.Load(), s.peak.Load())
}

// supplier serves the fake API.
type supplier struct {
	latency                time.Duration
	inFlight, peak, served atomic.Int64
}

func (s *supplier) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for p := s.peak.Load(); n > p && !s.peak.CompareAndSwap(p, n); p = s.peak.Load() {
	}
	s.served.Add(1)
	path := r.URL.Path
	delay := time.Duration(0)
	if s.latency > 0 {
		delay = rand.N(s.latency + 1)
	}
	switch {
	case strings.HasPrefix(path, "/slow/"):
		delay, path = 60*time.Second, strings.TrimPrefix(path, "/slow")
	case strings.HasPrefix(path, "/fail/"):
		answer(w, http.StatusInternalServerError, map[string]any{"status": "error", "message": "internal error, try again later"})
		return
	case strings.HasPrefix(path, "/notjson/"):
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintln(w, "<html><body><h1>502 Bad Gateway</h1></body></html>")
		return
	}
	select {
	case <-time.After(delay):
	case <-r.Context().Done():
		return // the caller gave up (its job's time ran out)
	}
	q := r.URL.Query()
	article, brand := q.Get("article"), strings.ToUpper(q.Get("brand"))
	switch {
	case path != "/search":
		answer(w, http.StatusNotFound, map[string]any{"status": "error", "message": "no such endpoint: " + path})
	case r.Header.Get("X-Api-Key") == "":
		answer(w, http.StatusUnauthorized, map[string]any{"status": "error", "message": "missing X-Api-Key"})
	case article == "":
		answer(w, http.StatusBadRequest, map[string]any{"status": "error", "message": "article is required"})
	case article == "blocked":
		answer(w, http.StatusOK, map[string]any{"status": "error", "message": "this article is blocked for your account"})
	default:
		answer(w, http.StatusOK, search(article, brand, q.Get("analogs") == "1"))
	}
}

// search is the answer for an article: two parts and, asked for, two crosses.
func search(article, brand string, analogs bool) map[string]any {
	if brand == "" {
		brand = "OEM"
	}
	parts, crosses := []any{}, []any{}
	if article != "empty" {
		parts = []any{
			map[string]any{"article": article, "brand": brand, "title": "Ball joint " + article, "price": "12.50", "stock": "7", "delivery_days": 1},
			map[string]any{"article": article, "brand": brand, "title": "Ball joint " + article + " (used)", "price": "8.9", "stock": "2", "delivery_days": 3},
		}
		if analogs {
			crosses = []any{
				map[string]any{"article": article + "-A1", "brand": "ANALOGCO"},
				map[string]any{"article": article + "-A2", "brand": "OTHERCO"},
			}
		}
	}
	return map[string]any{"status": "ok", "parts": parts, "crosses": crosses}
}

func answer(w http.ResponseWriter, status int, body map[string]any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The shop's suppliers (issue 24): how a parts API answers a search.
const (
	shopSupplierCount = 25
	shopMedian        = 300 * time.Millisecond // lognormal latency: its median,
	shopSigma         = 0.8                    // the σ of its logarithm (p90 ≈ 840 ms, p99 ≈ 1.9 s),
	shopLatencyCap    = 3 * time.Second        // and the longest a supplier takes
	shopMaxParts      = 60                     // parts in one answer: 0..60,
	shopMeanParts     = 22.0                   // exponential before the cap: ≈ 20 on average
	shopUnavailable   = 0.02                   // the share of calls answered 503
	// shopHangFor is how long a hanging supplier holds a call when the
	// caller does not give up first: longer than any job's time.
	shopHangFor = 60 * time.Second
)

// shopSuppliers are the fake supplier APIs of the shop part, in this
// process (aggbench's CPU is not the server's: the server's and PHP's
// are read from /proc). Each supplier has a listener of its own on
// 127.0.0.1, so that per-host connection pools, caps and breakers see 25
// hosts; each answers GET /search (JSON) and POST /soap (a SOAP 1.1
// envelope, for a SoapClient translator).
type shopSuppliers struct {
	apis        []*shopAPI
	byName      map[string]*shopAPI
	parts       []shopPart  // an answer with n parts has the first n
	json        [][]byte    // the JSON answer with n parts, by n
	soap        [][]byte    // the SOAP answer with n parts, by n
	unavailable float64     // the share of calls answered 503
	instant     atomic.Bool // answer at once, without the latency
}

// shopAPI is one supplier.
type shopAPI struct {
	name string
	url  string
	srv  *http.Server
	of   *shopSuppliers

	hang                     atomic.Bool // hold every call until the caller gives up
	calls, unavailable, part atomic.Int64
	lastParts                atomic.Int64 // how many parts the last answer had (for the tests)

	mu        sync.Mutex // guards the calls-per-second count
	second    int64      // the unix second being counted
	inSecond  int
	maxSecond int // the most calls that arrived in any one second
}

// startShopSuppliers starts the 25 suppliers, named sup01..sup25, with
// this share of calls answered 503 (shopUnavailable in the bench).
func startShopSuppliers(unavailable float64) *shopSuppliers {
	s := &shopSuppliers{byName: map[string]*shopAPI{}, unavailable: unavailable}
	rng := rand.New(rand.NewPCG(24, 2026)) // the same parts every run
	s.parts = make([]shopPart, shopMaxParts)
	for i := range s.parts {
		s.parts[i] = randomPart(rng, i)
	}
	for n := 0; n <= shopMaxParts; n++ {
		b, _ := json.Marshal(map[string][]shopPart{"parts": s.parts[:n]})
		s.json = append(s.json, b)
		s.soap = append(s.soap, soapAnswer(s.parts[:n]))
	}
	for i := 1; i <= shopSupplierCount; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fail("shop supplier: %v", err)
		}
		a := &shopAPI{name: fmt.Sprintf("sup%02d", i), url: "http://" + ln.Addr().String(), of: s}
		a.srv = &http.Server{Handler: a, ReadHeaderTimeout: time.Minute}
		go func() { _ = a.srv.Serve(ln) }()
		s.apis = append(s.apis, a)
		s.byName[a.name] = a
	}
	return s
}

// env is SHOP_SUPPLIERS for the translators: name=url,... of the first
// n suppliers (all of them when n is 0).
func (s *shopSuppliers) env(n int) string {
	if n == 0 {
		n = len(s.apis)
	}
	pairs := make([]string, n)
	for i, a := range s.apis[:n] {
		pairs[i] = a.name + "=" + a.url
	}
	return "SHOP_SUPPLIERS=" + strings.Join(pairs, ",")
}

// host is a supplier's host:port, as a per-supplier setting names it.
func (s *shopSuppliers) host(name string) string {
	return strings.TrimPrefix(s.api(name).url, "http://")
}

func (s *shopSuppliers) api(name string) *shopAPI {
	a := s.byName[name]
	if a == nil {
		fail("shop: no supplier %q", name)
	}
	return a
}

// reset starts counting afresh and makes hang (a name, or "") the one
// supplier that hangs; instant suppliers answer without their latency.
func (s *shopSuppliers) reset(hang string, instant bool) {
	s.instant.Store(instant)
	for _, a := range s.apis {
		a.calls.Store(0)
		a.unavailable.Store(0)
		a.part.Store(0)
		a.mu.Lock()
		a.second, a.inSecond, a.maxSecond = 0, 0, 0
		a.mu.Unlock()
		a.hang.Store(a.name == hang)
	}
}

// totals are the calls all suppliers got, those answered 503 and the
// parts answered.
func (s *shopSuppliers) totals() (calls, unavailable, parts int64) {
	for _, a := range s.apis {
		calls += a.calls.Load()
		unavailable += a.unavailable.Load()
		parts += a.part.Load()
	}
	return calls, unavailable, parts
}

func (s *shopSuppliers) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, a := range s.apis {
		a.hang.Store(false)
		_ = a.srv.Shutdown(ctx)
	}
}

// ServeHTTP answers one search after the supplier's latency.
func (a *shopAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.calls.Add(1)
	a.count(time.Now().Unix())
	delay := shopLatency(rand.NormFloat64())
	if a.of.instant.Load() {
		delay = 0
	}
	if a.hang.Load() {
		delay = shopHangFor
	}
	t := time.NewTimer(delay)
	select {
	case <-t.C:
	case <-r.Context().Done():
		t.Stop()
		return
	}
	if rand.Float64() < a.of.unavailable {
		a.unavailable.Add(1)
		http.Error(w, "service temporarily unavailable", http.StatusServiceUnavailable)
		return
	}
	n := shopParts(rand.ExpFloat64())
	a.part.Add(int64(n))
	a.lastParts.Store(int64(n))
	if r.Method == http.MethodPost && r.URL.Path == "/soap" {
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		_, _ = w.Write(a.of.soap[n])
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(a.of.json[n])
}

// count adds a call to the second now (unix seconds) and keeps the most
// any second saw: what a supplier enforcing a quota per second sees.
func (a *shopAPI) count(now int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if now != a.second {
		a.second, a.inSecond = now, 0
	}
	a.inSecond++
	a.maxSecond = max(a.maxSecond, a.inSecond)
}

func (a *shopAPI) maxPerSecond() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.maxSecond
}

// shopLatency maps a standard normal draw to a supplier's latency.
func shopLatency(z float64) time.Duration {
	d := time.Duration(float64(shopMedian) * math.Exp(shopSigma*z))
	return min(d, shopLatencyCap)
}

// shopParts maps an exponential draw (mean 1) to an answer's part count.
func shopParts(e float64) int { return min(shopMaxParts, int(e*shopMeanParts)) }

// shopBound is what a server of zero cost would do with browsers
// searching back to back: each search lasts as long as its slowest
// supplier, so browsers ÷ E[max of 25 latencies] (by simulation).
func shopBound(browsers int) float64 {
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 20000
	var sum time.Duration
	for range n {
		var slowest time.Duration
		for range shopSupplierCount {
			slowest = max(slowest, shopLatency(rng.NormFloat64()))
		}
		sum += slowest
	}
	return float64(browsers) / (sum / n).Seconds()
}

// shopPart is one part as the fake API describes it: 12 fields, names
// padded as some suppliers send them, some out of stock.
type shopPart struct {
	Number       string  `json:"number"`
	Maker        string  `json:"maker"`
	Title        string  `json:"title"`
	Price        float64 `json:"price"`
	Currency     string  `json:"currency"`
	Stock        int     `json:"stock"`
	Warehouse    string  `json:"warehouse"`
	DeliveryDays int     `json:"delivery_days"`
	MinOrder     int     `json:"min_order"`
	Multiplicity int     `json:"multiplicity"`
	Weight       float64 `json:"weight"`
	Updated      string  `json:"updated"`
}

var (
	shopMakers = []string{"CTR", "Febi", "Lemförder", "TRW", "Sidem", "Moog"}
	shopTitles = []string{"Ball joint", "Tie rod end", "Stabilizer link", "Control arm", "Wheel bearing kit", "Brake pad set"}
	shopSides  = []string{"front left", "front right", "rear", "front axle", "left", "right"}
)

func randomPart(rng *rand.Rand, i int) shopPart {
	stock := rng.IntN(40)
	if rng.IntN(5) == 0 {
		stock = 0 // out of stock: the translator drops it
	}
	return shopPart{
		Number:       fmt.Sprintf(" CT-%04d%s", 1000+rng.IntN(9000), strings.Repeat(" ", rng.IntN(2))),
		Maker:        shopMakers[rng.IntN(len(shopMakers))] + strings.Repeat(" ", rng.IntN(3)),
		Title:        fmt.Sprintf("  %s, %s ", shopTitles[rng.IntN(len(shopTitles))], shopSides[rng.IntN(len(shopSides))]),
		Price:        math.Round(rng.Float64()*500000) / 100,
		Currency:     "RUB",
		Stock:        stock,
		Warehouse:    fmt.Sprintf("MSK-%d", 1+i%4),
		DeliveryDays: rng.IntN(10),
		MinOrder:     1,
		Multiplicity: 1 + rng.IntN(2),
		Weight:       math.Round(rng.Float64()*500) / 100,
		Updated:      "2026-12-04T03:00:00Z",
	}
}

// soapAnswer is a SOAP 1.1 answer (rpc/encoded, as ext-soap's non-WSDL
// mode reads it): <return> holds one <part> element per part.
func soapAnswer(parts []shopPart) []byte {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` +
		`<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ns1="urn:parts">` +
		`<SOAP-ENV:Body><ns1:searchResponse><return>`)
	for _, p := range parts {
		fmt.Fprintf(&b, "<part><number>%s</number><maker>%s</maker><title>%s</title><price>%.2f</price>"+
			"<currency>%s</currency><stock>%d</stock><warehouse>%s</warehouse><delivery_days>%d</delivery_days>"+
			"<min_order>%d</min_order><multiplicity>%d</multiplicity><weight>%.2f</weight><updated>%s</updated></part>",
			p.Number, p.Maker, p.Title, p.Price, p.Currency, p.Stock, p.Warehouse, p.DeliveryDays,
			p.MinOrder, p.Multiplicity, p.Weight, p.Updated)
	}
	b.WriteString(`</return></ns1:searchResponse></SOAP-ENV:Body></SOAP-ENV:Envelope>`)
	return []byte(b.String())
}

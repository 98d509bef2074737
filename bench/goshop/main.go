// Command goshop is the shop's search written in Go alone, no PHP: what
// a competent Go developer would write in an afternoon instead of the
// aggregator, for aggbench's shop part to measure beside it (issue 24).
// gorilla/websocket, encoding/json, one shared http.Client, one goroutine
// per supplier; the same suppliers, the same mapping as the PHP translator
// (cmd/aggbench/testdata/shop.php) and the same messages to the browser
// (SPEC §4: PENDING per supplier, SENDING per item, SUCCESS or ERROR).
//
//	SHOP_SUPPLIERS=sup01=http://127.0.0.1:PORT,... goshop [-addr 127.0.0.1:0]
//
// It prints the address it listens on, then serves /ws.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

const (
	markup         = 1.18            // the shop's margin, as in shop.php
	apiKey         = "bench-key"     // sent to every supplier
	supplierTime   = 5 * time.Second // what the aggregator gives a task (aggregator.timeout.script)
	sessionTime    = 30 * time.Second
	writeWait      = 10 * time.Second // time allowed to write one message
	requestWait    = 60 * time.Second // time allowed for the browser's request
	maxRequestSize = 64 << 10
)

var requestFields = []string{"code", "brand", "apikey", "analog"}

type supplier struct{ name, url string }

// part is a supplier's part as its API describes it.
type part struct {
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
}

type info struct {
	Supplier string `json:"supplier"`
}

// status is the head every message carries.
type status struct {
	Session string `json:"_session"`
	Task    string `json:"_task"`
	ID      int64  `json:"_id"`
	Status  string `json:"_status"`
	Error   string `json:"_error,omitempty"`
	Message string `json:"_message,omitempty"`
	Info    info   `json:"_info"`
}

// item is one SENDING message: the shop's fields, then the head.
type item struct {
	Code         string  `json:"code"`
	Brand        string  `json:"brand"`
	Name         string  `json:"name"`
	Price        float64 `json:"price"`
	Currency     string  `json:"currency"`
	Quantity     int     `json:"quantity"`
	Multiplicity int     `json:"multiplicity"`
	Delivery     int     `json:"delivery"`
	Warehouse    string  `json:"warehouse"`
	Supplier     string  `json:"supplier"`
	status
}

type service struct {
	suppliers []supplier
	client    *http.Client
	upgrader  websocket.Upgrader
	sessions  atomic.Int64
	tasks     atomic.Int64
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()
	var sups []supplier
	for _, pair := range strings.Split(os.Getenv("SHOP_SUPPLIERS"), ",") {
		if name, u, ok := strings.Cut(pair, "="); ok {
			sups = append(sups, supplier{name, u})
		}
	}
	if len(sups) == 0 {
		log.Fatal("goshop: SHOP_SUPPLIERS names no supplier")
	}
	// One client for all searches: its connections are kept alive and
	// shared. The default keeps 2 idle connections per host, far fewer
	// than the calls in flight to one supplier.
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 256
	s := &service{suppliers: sups, client: &http.Client{Transport: t}}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ln.Addr().String())
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", s.serveWS)
	log.Fatal((&http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}).Serve(ln))
}

// serveWS runs one search: the request, a PENDING per supplier, then each
// supplier's messages as they come, then close 1000.
func (s *service) serveWS(w http.ResponseWriter, r *http.Request) {
	c, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer c.Close()
	c.SetReadLimit(maxRequestSize)
	_ = c.SetReadDeadline(time.Now().Add(requestWait))
	_, raw, err := c.ReadMessage()
	if err != nil {
		return
	}
	session := fmt.Sprint(s.sessions.Add(1))
	var req map[string]any
	if err := json.Unmarshal(raw, &req); err != nil || req == nil {
		s.refuse(c, session, "E_REQUEST_JSON")
		return
	}
	for _, f := range requestFields {
		if _, ok := req[f]; !ok {
			s.refuse(c, session, "E_ILLEGAL_REQUEST")
			return
		}
	}
	code, brand := fmt.Sprint(req["code"]), fmt.Sprint(req["brand"])

	ctx, cancel := context.WithTimeout(r.Context(), sessionTime)
	defer cancel()
	out := make(chan []byte, 256)
	ids := make([]int64, len(s.suppliers))
	for i, sup := range s.suppliers {
		ids[i] = s.tasks.Add(1)
		if !write(c, mustJSON(status{Session: session, Task: "ITEMS", ID: ids[i], Status: "PENDING", Info: info{sup.name}})) {
			return
		}
	}
	var wg sync.WaitGroup
	for i, sup := range s.suppliers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.search(ctx, sup, status{Session: session, Task: "ITEMS", ID: ids[i], Info: info{sup.name}}, code, brand, out)
		}()
	}
	go func() { wg.Wait(); close(out) }()
	for m := range out {
		if !write(c, m) {
			return // the browser left: cancel stops the searches
		}
	}
	_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(writeWait))
	// Wait for the browser's close frame (it answers ours), then go.
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			return
		}
	}
}

// search asks one supplier and sends its items, then SUCCESS or ERROR.
func (s *service) search(ctx context.Context, sup supplier, head status, code, brand string, out chan<- []byte) {
	send := func(m []byte) bool {
		select {
		case out <- m:
			return true
		case <-ctx.Done():
			return false
		}
	}
	parts, err := s.ask(ctx, sup, code, brand)
	if err != nil {
		head.Status, head.Error = "ERROR", "E_SCRIPT_ERROR"
		if errors.Is(err, context.DeadlineExceeded) {
			head.Error = "E_SCRIPT_TIMEOUT"
		}
		if errors.Is(err, errUnavailable) {
			head.Message = "the supplier is unavailable (503), try again later"
		}
		send(mustJSON(head))
		return
	}
	head.Status = "SENDING"
	for _, p := range parts {
		if p.Stock <= 0 || p.Stock < p.MinOrder {
			continue
		}
		m := mustJSON(item{
			Code: strings.TrimSpace(p.Number), Brand: strings.TrimSpace(p.Maker), Name: strings.TrimSpace(p.Title),
			Price: math.Round(p.Price*markup*100) / 100, Currency: p.Currency, Quantity: p.Stock,
			Multiplicity: p.Multiplicity, Delivery: p.DeliveryDays, Warehouse: p.Warehouse, Supplier: sup.name,
			status: head,
		})
		if !send(m) {
			return
		}
	}
	head.Status = "SUCCESS"
	send(mustJSON(head))
}

var errUnavailable = errors.New("supplier unavailable (503)")

// ask calls the supplier's search and decodes its parts.
func (s *service) ask(ctx context.Context, sup supplier, code, brand string) ([]part, error) {
	ctx, cancel := context.WithTimeout(ctx, supplierTime)
	defer cancel()
	u := sup.url + "/search?code=" + url.QueryEscape(code) + "&brand=" + url.QueryEscape(brand)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Api-Key", apiKey)
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusServiceUnavailable {
		return nil, errUnavailable
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %d", sup.name, resp.StatusCode)
	}
	var answer struct {
		Parts []part `json:"parts"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		return nil, err
	}
	return answer.Parts, nil
}

// refuse answers a bad request with a session ERROR and close 1008.
func (s *service) refuse(c *websocket.Conn, session, code string) {
	write(c, mustJSON(map[string]string{"_session": session, "_task": "SESSION", "_status": "ERROR", "_error": code}))
	_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, ""), time.Now().Add(writeWait))
}

func write(c *websocket.Conn, m []byte) bool {
	_ = c.SetWriteDeadline(time.Now().Add(writeWait))
	return c.WriteMessage(websocket.TextMessage, m) == nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own types, which always encode
	}
	return b
}

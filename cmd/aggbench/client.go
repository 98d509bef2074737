package main

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// outcome is one session as the browser saw it.
type outcome struct {
	first, total time.Duration // first SENDING, close
	msgs         int
	errors       int // ERROR messages
	closeCode    int
	err          error
}

// ok says the session closed normally with no ERROR message.
func (o outcome) ok() bool { return o.err == nil && o.closeCode == 1000 && o.errors == 0 }

var (
	sendingMark = []byte(`"_status":"SENDING"`)
	errorMark   = []byte(`"_status":"ERROR"`)
)

var dialer = &websocket.Dialer{HandshakeTimeout: 30 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 1024}

// session runs one search as a browser: connect, send the request, read
// every message until the server closes.
func session(url, code string) outcome {
	return sessionRequest(url, fmt.Sprintf(`{"code":%q,"brand":"ctr","apikey":"1","analog":1}`, code))
}

func sessionRequest(url, req string) outcome {
	start := time.Now()
	var o outcome
	o.closeCode, o.err = converse(context.Background(), url, req, func(m []byte) {
		o.msgs++
		if o.first == 0 && bytes.Contains(m, sendingMark) {
			o.first = time.Since(start)
		}
		if bytes.Contains(m, errorMark) {
			o.errors++
		}
	})
	o.total = time.Since(start)
	return o
}

// converse runs one browser's session: connect, send req, hand each
// message to onMsg until the server closes; it returns the close code.
// When ctx ends first the browser leaves (closes the connection).
func converse(ctx context.Context, url, req string, onMsg func([]byte)) (closeCode int, err error) {
	c, _, err := dialer.DialContext(ctx, url, nil)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	defer context.AfterFunc(ctx, func() { c.Close() })()
	if err := c.WriteMessage(websocket.TextMessage, []byte(req)); err != nil {
		return 0, err
	}
	_ = c.SetReadDeadline(time.Now().Add(120 * time.Second))
	for {
		_, m, err := c.ReadMessage()
		if err != nil {
			if ce, ok := err.(*websocket.CloseError); ok {
				return ce.Code, nil
			}
			return 0, err
		}
		onMsg(m)
	}
}

// load runs sessions of code from conc browsers for d; it returns every
// outcome and the time from the start until the last session ended.
func load(url, code string, conc int, d time.Duration) ([]outcome, time.Duration) {
	var mu sync.Mutex
	out := make([]outcome, 0, 1024)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				o := session(url, code)
				mu.Lock()
				out = append(out, o)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out, time.Since(start)
}

func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	i := int(float64(len(ds)-1) * p)
	return ds[i]
}

func ms(d time.Duration) string {
	if d >= 100*time.Millisecond {
		return fmt.Sprintf("%.0f", float64(d.Microseconds())/1000)
	}
	return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000)
}

// summary is what a table row needs of a load's outcomes.
type summary struct {
	ok, failed     int
	firsts, totals []time.Duration
}

// summarize counts sessions; all says every session that closed 1000
// counts as done even with task errors (the mixed scenario has two).
func summarize(out []outcome, all bool) summary {
	var s summary
	for _, o := range out {
		done := o.ok() || (all && o.err == nil && o.closeCode == 1000)
		if !done {
			s.failed++
			continue
		}
		s.ok++
		if o.first > 0 {
			s.firsts = append(s.firsts, o.first)
		}
		s.totals = append(s.totals, o.total)
	}
	return s
}

func (s summary) latencies() string {
	return fmt.Sprintf("%s / %s | %s / %s", ms(pct(s.firsts, .5)), ms(pct(s.firsts, .99)),
		ms(pct(s.totals, .5)), ms(pct(s.totals, .99)))
}

// commas writes n with thousands separators.
func commas(n float64) string {
	s := fmt.Sprintf("%.0f", n)
	var b []byte
	for i, c := range []byte(s) {
		if i > 0 && (len(s)-i)%3 == 0 && s[0] != '-' {
			b = append(b, ',')
		}
		b = append(b, c)
	}
	return string(b)
}

package main

import (
	"fmt"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// throughput: finished sessions/s and latencies, worker vs exec.
func throughput() {
	fmt.Println("### Throughput (DEMO_DELAY_MS=0, aggregator.pool.executor=4)")
	fmt.Println()
	fmt.Println("| mode | scenario | browsers | sessions/s | first item p50 / p99 ms | session p50 / p99 ms | failed |")
	fmt.Println("|---|---|---|---|---|---|---|")
	rates := map[string]float64{}
	for _, mode := range []string{"worker", "exec"} {
		s := start([]string{"DEMO_DELAY_MS=0"}, "-Daggregator.pool.mode="+mode, "-Daggregator.pool.executor=4",
			"-Daggregator.timeout.script=1")
		for _, sc := range []struct {
			code string
			conc int
		}{{"normal", 1}, {"normal", 16}, {"normal", 64}, {"mixed", 16}} {
			if mode == "exec" && sc.conc == 64 {
				continue // exec mode is 4 processes at ~16 ms each: 64 browsers only queue
			}
			out, took := load(s.ws, sc.code, sc.conc, *duration)
			// mixed ends 1000 with two task errors: every such session counts
			sum := summarize(out, sc.code == "mixed")
			rate := float64(sum.ok) / took.Seconds()
			if sc.code == "normal" && sc.conc == 16 {
				rates[mode] = rate
			}
			fmt.Printf("| %s | %s | %d | %s | %s | %d |\n", mode, sc.code, sc.conc, commas(rate), sum.latencies(), sum.failed)
		}
		s.stop()
	}
	if rates["exec"] > 0 {
		fmt.Printf("\nworker / exec, `normal` sessions/s at 16 browsers: **%.0f×**\n\n", rates["worker"]/rates["exec"])
	}
}

// fairness: a session flooding 2001 sleeping suppliers must not starve 40
// ordinary sessions arriving meanwhile.
func fairness() {
	fmt.Println("### Fair queue (executor=4, session-limit=2, one session with 2001 sleeping suppliers)")
	fmt.Println()
	s := start([]string{"DEMO_DELAY_MS=50"}, "-Daggregator.pool.executor=4", "-Daggregator.pool.session-limit=2",
		"-Daggregator.timeout.script=5", "-Daggregator.timeout.session=60")
	defer s.stop()
	go session(s.ws, "sessionTimeout") // the flood
	time.Sleep(500 * time.Millisecond)
	var mu sync.Mutex
	var out []outcome
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := session(s.ws, "normal")
			mu.Lock()
			out = append(out, o)
			mu.Unlock()
		}()
		time.Sleep(25 * time.Millisecond)
	}
	wg.Wait()
	sum := summarize(out, false)
	correct := 0
	for _, o := range out {
		if o.ok() && o.msgs == 15 {
			correct++
		}
	}
	fmt.Printf("| normal sessions | finished correctly | p50 ms | p99 ms | target p99 |\n|---|---|---|---|---|\n")
	fmt.Printf("| 40 | %d (%d closed 1000) | %s | %s | < 2000 |\n\n", correct, sum.ok, ms(pct(sum.totals, .5)), ms(pct(sum.totals, .99)))
}

// memory: RSS of the server with 1000 sessions open, each with 3 tasks queued.
func memory() {
	fmt.Println("### Memory (1000 concurrent sessions, each with 3 queued sleeping tasks)")
	fmt.Println()
	fmt.Println("| mode | sessions | RSS idle | RSS at 1000 sessions | target |")
	fmt.Println("|---|---|---|---|---|")
	for _, mode := range []string{"worker", "exec"} {
		s := start([]string{"DEMO_DELAY_MS=0"}, "-Daggregator.pool.mode="+mode, "-Daggregator.pool.executor=4",
			"-Daggregator.timeout.script=60", "-Daggregator.timeout.session=60")
		idle := rss(s.pid())
		var conns []*websocket.Conn
		for i := 0; i < 1000; i++ {
			c, _, err := dialer.Dial(s.ws, nil)
			if err != nil {
				fail("dial %d: %v", i, err)
			}
			_ = c.WriteMessage(websocket.TextMessage, []byte(`{"code":"itemsTimeout","brand":"b","apikey":"1","analog":1}`))
			conns = append(conns, c)
		}
		// Wait until the suppliers tasks have run and the items tasks wait.
		time.Sleep(3 * time.Second)
		if mode == "exec" {
			time.Sleep(5 * time.Second)
		}
		peak := rss(s.pid())
		for _, c := range conns {
			c.Close()
		}
		fmt.Printf("| %s | 1000 | %.1f MB | %.1f MB | < 64 MB |\n", mode, float64(idle)/(1<<20), float64(peak)/(1<<20))
		s.stop()
	}
	fmt.Println()
}

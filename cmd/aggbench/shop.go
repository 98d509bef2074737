package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/theaspect/aggregator/internal/procstat"
)

var (
	shopD        = flag.Duration("shop-d", 15*time.Second, "shop: how long each row is measured, after its warm-up")
	shopWarm     = flag.Duration("shop-warmup", 5*time.Second, "shop: the warm-up of each row (not measured)")
	shopRounds   = flag.Int("shop-rounds", 3, "shop: how many times every row is measured, in turn (each row is its median round)")
	shopBrowsers = flag.Int("shop-browsers", 100, "shop: browsers searching back to back")
	shopOnly     = flag.String("shop-rows", "", "shop: comma-separated row keys to run (default: every row that can run here)")
)

// shopKind is what serves a shop row's searches.
type shopKind int

const (
	shopAggregator shopKind = iota // bin/aggregator with cmd/aggbench/testdata/shop.php
	shopGo                         // bench/goshop: the same service in Go alone
	shopNode                       // bench/nodeshop: the same service in Node.js
)

// shopRow is one row of the shop table. A new row is one line in
// shopRows; rows whose needs say no are listed as not run, with why.
type shopRow struct {
	key, name string
	kind      shopKind
	call      string                          // SHOP_CALL for shop.php: fetch, stream, guzzle, soap
	args      func(s *shopSuppliers) []string // -D overrides; nil: the default configuration
	needs     func() string                   // why the row cannot run here yet; "" when it can
	hang      string                          // the supplier that hangs in this row
	instant   bool                            // the suppliers answer at once: the row measures PHP's own cost
	watch     string                          // the supplier whose task times and calls per second the row reports
	browsers  int                             // 0: -shop-browsers
}

// The supplier the limits rows (issue 26) single out.
const shopSingled = "sup07"

var shopRows = []shopRow{
	{key: "fetch", name: "aggregator, default configuration, `fetch()`", call: "fetch"},
	{key: "stream", name: "aggregator, default configuration, `file_get_contents` + stream context", call: "stream"},
	{key: "tuned", name: "aggregator, executor=4 concurrency=256, `fetch()`", call: "fetch",
		args: fixed("-Daggregator.pool.executor=4", "-Daggregator.pool.concurrency=256")},
	{key: "go", name: "Go alone (`bench/goshop`: gorilla, encoding/json, one http.Client)", kind: shopGo, needs: goShopBuilt},
	{key: "node", name: "Node.js alone (`bench/nodeshop`: ws 8.23, built-in fetch)", kind: shopNode, needs: nodeShopReady},

	// Issue 24: the adapters, each ≥ 90% of the fetch() row.
	{key: "soap", name: "aggregator, default configuration, `\\Aggregator\\SoapClient`", call: "soap", needs: phpClass(`Aggregator\SoapClient`)},
	{key: "guzzle", name: "aggregator, default configuration, Guzzle on `GuzzleHandler`", call: "guzzle", needs: phpClass(`Aggregator\Http\GuzzleHandler`)},
	// Issue 26: supplier limits (SPEC §18), named by supplier.
	{key: "hang", name: "aggregator, default configuration, `fetch()`, " + shopSingled + " hanging, breakers on", call: "fetch",
		hang: shopSingled, watch: shopSingled, args: supplierHosts(shopSingled), needs: configKey("aggregator.supplier." + shopSingled + ".hosts=127.0.0.1")},
	{key: "quota", name: "aggregator, default configuration, `fetch()`, " + shopSingled + " at most 50 calls/s", call: "fetch",
		watch: shopSingled, args: supplierHosts(shopSingled, "rate=50/s"), needs: configKey("aggregator.supplier." + shopSingled + ".rate=50/s")},
	// Issue 27: exec mode (a `php` per call) through a fork server against fork+exec.
	// The suppliers answer at once: with their latency the 20 exec processes
	// wait on them, whatever a process costs to start.
	{key: "exec-fork", name: "exec mode through the fork server, suppliers answering at once, 4 browsers", call: "fetch", browsers: 4,
		instant: true, args: execMode("true"), needs: configKey("aggregator.script.fork=true")},
	{key: "exec", name: "exec mode, fork+exec per call, suppliers answering at once, 4 browsers", call: "fetch", browsers: 4,
		instant: true, args: execMode("false"), needs: configKey("aggregator.script.fork=false")},
}

func fixed(args ...string) func(*shopSuppliers) []string {
	return func(*shopSuppliers) []string { return args }
}

// supplierHosts names a supplier's host (its port on 127.0.0.1) for the
// per-supplier settings of SPEC §18, with more of them (key=value).
func supplierHosts(name string, settings ...string) func(*shopSuppliers) []string {
	return func(s *shopSuppliers) []string {
		args := []string{"-Daggregator.supplier." + name + ".hosts=" + s.host(name)}
		for _, kv := range settings {
			args = append(args, "-Daggregator.supplier."+name+"."+kv)
		}
		return args
	}
}

func execMode(fork string) func(*shopSuppliers) []string {
	script := "php -d display_errors=stderr cmd/aggbench/testdata/shop-exec.php "
	return fixed("-Daggregator.pool.mode=exec", "-Daggregator.script.fork="+fork,
		"-Daggregator.script.suppliers="+script+"suppliers", "-Daggregator.script.items="+script+"items")
}

// shopResult is one row's measurement.
type shopResult struct {
	window                    time.Duration
	clean, withErrors, failed int // sessions: every task done (503s allowed); closed 1000 with task errors; not closed 1000
	tasks, unavailable        int
	taskErrors                map[string]int // the error codes of the tasks that failed beyond the 503s
	sessionErrors             map[string]int // not closed 1000: the session error, close code or client error
	items                     int
	firsts, watched           []time.Duration
	serverCPU, phpCPU         float64 // seconds in the window
	mem                       *sampler
	maxPerSecond              int     // the watched supplier's most calls in one second
	others                    float64 // cores the other processes on the machine used in the window
	calls, parts              int64   // the suppliers' calls and the parts they answered, in the window
}

func (r *shopResult) sessions() int { return r.clean + r.withErrors }
func (r *shopResult) rate() float64 { return float64(r.clean) / r.window.Seconds() }
func (r *shopResult) errorCount() (n int) {
	for _, v := range r.taskErrors {
		n += v
	}
	return n
}

// cpuPerSearch is server + PHP CPU ÷ the sessions that ended, in seconds.
func (r *shopResult) cpuPerSearch() (all, server, php float64) {
	n := float64(max(r.sessions()+r.failed, 1))
	return (r.serverCPU + r.phpCPU) / n, r.serverCPU / n, r.phpCPU / n
}

// shop: the realistic shop search (issue 24) served by the aggregator in
// several configurations and by the same service written without PHP.
func shop() {
	sup := startShopSuppliers(shopUnavailable)
	defer sup.close()
	defer func() {
		if goShopBinary != "" {
			_ = os.RemoveAll(filepath.Dir(goShopBinary))
		}
	}()
	browsers := *shopBrowsers
	fmt.Printf("### A real shop's search (%d suppliers, latency lognormal median %v σ=%.1f capped at %v, 0–%d parts of 12 fields, %.0f%% answering 503; %d browsers; %v warm-up, then %v per row, %d rounds)\n\n",
		shopSupplierCount, shopMedian, shopSigma, shopLatencyCap, shopMaxParts, 100*shopUnavailable, browsers, *shopWarm, *shopD, *shopRounds)
	for _, w := range strings.Split(*shopOnly, ",") {
		if w = strings.TrimSpace(w); w != "" && !slices.ContainsFunc(shopRows, func(r shopRow) bool { return r.key == w }) {
			fail("-shop-rows: no row %q", w)
		}
	}
	var rows []shopRow
	var skipped []string
	for _, r := range shopRows {
		if !inList(*shopOnly, r.key) {
			continue
		}
		if r.needs != nil {
			if why := r.needs(); why != "" {
				skipped = append(skipped, fmt.Sprintf("`%s` (%s): %s", r.key, r.name, why))
				continue
			}
		}
		rows = append(rows, r)
	}
	results := map[string][]*shopResult{}
	for round := 0; round < *shopRounds; round++ {
		for _, r := range rows {
			res := r.measure(sup)
			fmt.Fprintf(os.Stderr, "aggbench: shop round %d %s: %.1f sessions/s, %d task errors\n", round+1, r.key, res.rate(), res.errorCount())
			results[r.key] = append(results[r.key], res)
		}
	}
	printShop(rows, results, shopBound(browsers))
	if len(skipped) > 0 {
		fmt.Println("Not run here:")
		for _, s := range skipped {
			fmt.Println("- " + s)
		}
		fmt.Println()
	}
}

// measure starts the row's server, loads it for warm-up + -shop-d and
// stops it: each row starts afresh, so that no other row's PHP processes
// share its pages (PSS) or its CPU.
func (r shopRow) measure(sup *shopSuppliers) *shopResult {
	sup.reset(r.hang, r.instant)
	srv := r.start(sup, 0)
	defer srv.stop()
	browsers := r.browsers
	if browsers == 0 {
		browsers = *shopBrowsers
	}
	return shopLoad(srv, sup, browsers, r.watch, r.hang)
}

// start runs the row's server against the first n suppliers (all when 0).
func (r shopRow) start(sup *shopSuppliers, n int) *server {
	env := []string{sup.env(n), "SHOP_CALL=" + r.call}
	if r.kind == shopAggregator {
		args := []string{"-Daggregator.worker.handlers=cmd/aggbench/testdata/shop.php"}
		if r.args != nil {
			args = append(args, r.args(sup)...)
		}
		return start(env, args...)
	}
	cmd := exec.Command(goShopBinary, "-addr", "127.0.0.1:0")
	if r.kind == shopNode {
		cmd = exec.Command("node", filepath.Join("bench", "nodeshop", "server.js"))
		env = append(env, "NODE_PATH="+filepath.Join(nodeModules, "node_modules"))
	}
	cmd.Env = append(os.Environ(), env...)
	srv, err := startPrinting(cmd)
	if err != nil {
		fail("shop %s: %v", r.key, err)
	}
	return srv
}

// shopLoad runs browsers searching back to back for the warm-up and the
// window; it counts the sessions that ended inside the window and the
// server's and PHP's CPU over it. At the end the browsers leave.
func shopLoad(srv *server, sup *shopSuppliers, browsers int, watch, hang string) *shopResult {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w0 := time.Now().Add(*shopWarm)
	w1 := w0.Add(*shopD)
	var mu sync.Mutex
	var outs []shopOutcome
	var wg sync.WaitGroup
	for b := range browsers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ctx.Err() == nil; n++ {
				o := shopSession(ctx, srv.ws, fmt.Sprintf(`{"code":"CT-%d-%d","brand":"ctr","apikey":"1","analog":1}`, b, n), watch, hang)
				if !o.end.Before(w0) && o.end.Before(w1) {
					mu.Lock()
					outs = append(outs, o)
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(time.Until(w0))
	for _, a := range sup.apis {
		a.mu.Lock()
		a.second, a.inSecond, a.maxSecond = 0, 0, 0 // count calls per second in the window only
		a.mu.Unlock()
	}
	c0, b0, a0 := cpuOf(srv.pid()), busyTime(), procstat.Self()
	calls0, _, parts0 := sup.totals()
	smp := sample(srv.pid(), time.Second)
	time.Sleep(time.Until(w1))
	c1, b1, a1 := cpuOf(srv.pid()), busyTime(), procstat.Self()
	calls1, _, parts1 := sup.totals()
	smp.end()
	res := &shopResult{window: *shopD, serverCPU: c1.server - c0.server, phpCPU: c1.php - c0.php, mem: smp,
		taskErrors: map[string]int{}, sessionErrors: map[string]int{}, calls: calls1 - calls0, parts: parts1 - parts0}
	// What the machine's other processes took meanwhile: on a shared
	// machine a row measured beside a busy neighbour is slower.
	res.others = max(0, (b1-b0)-(res.serverCPU+res.phpCPU)-(a1-a0).Seconds()) / shopD.Seconds()
	if watch != "" {
		res.maxPerSecond = sup.api(watch).maxPerSecond()
	}
	cancel()
	wg.Wait()
	for _, o := range outs {
		res.add(o)
	}
	return res
}

func (r *shopResult) add(o shopOutcome) {
	r.tasks += o.tasks
	r.unavailable += o.unavailable
	r.items += o.items
	r.watched = append(r.watched, o.watched...)
	for _, c := range o.taskErrors {
		r.taskErrors[c]++
	}
	switch {
	case o.err != nil:
		r.failed++
		r.sessionErrors["client: "+o.err.Error()]++
		return
	case o.closeCode != 1000 || o.sessionError != "":
		r.failed++
		r.sessionErrors[fmt.Sprintf("close %d %s", o.closeCode, o.sessionError)]++
		return
	case o.ended < o.tasks:
		r.failed++
		r.sessionErrors[fmt.Sprintf("closed 1000 with %d of %d tasks unended", o.tasks-o.ended, o.tasks)]++
		return
	case len(o.taskErrors) > 0:
		r.withErrors++
	default:
		r.clean++
	}
	if o.first > 0 {
		r.firsts = append(r.firsts, o.first)
	}
}

// shopOutcome is one search as the browser saw it.
type shopOutcome struct {
	end                 time.Time
	first               time.Duration // to the first SENDING
	tasks, ended, items int           // PENDINGs, SUCCESS/ERRORs of tasks, SENDINGs
	unavailable         int           // tasks that failed by their supplier: a 503, the hanging one
	taskErrors          []string      // the _error of every other failed task
	sessionError        string
	closeCode           int
	err                 error
	watched             []time.Duration // the watched supplier's tasks: PENDING to their end
	watchedID           int
	watchedAt           time.Time
}

// shopHead is what the bench reads of a message other than SENDING.
type shopHead struct {
	Task    string `json:"_task"`
	ID      int    `json:"_id"`
	Status  string `json:"_status"`
	Error   string `json:"_error"`
	Message string `json:"_message"`
	Info    struct {
		Supplier string `json:"supplier"`
	} `json:"_info"`
}

// shopSession runs one search: every SENDING counts as an item; the other
// messages are decoded to follow the tasks. The tasks of watch are timed;
// those of hang, when they fail, fail by the supplier as a 503 does.
func shopSession(ctx context.Context, url, req, watch, hang string) shopOutcome {
	start := time.Now()
	var o shopOutcome
	o.closeCode, o.err = converse(ctx, url, req, func(m []byte) {
		if bytes.Contains(m, sendingMark) {
			o.items++
			if o.first == 0 {
				o.first = time.Since(start)
			}
			return
		}
		var h shopHead
		if err := json.Unmarshal(m, &h); err != nil {
			o.taskErrors = append(o.taskErrors, "not JSON")
			return
		}
		o.follow(h, watch, hang)
	})
	o.end = time.Now() // a session the browser left at the end of the run ends after the window
	return o
}

func (o *shopOutcome) follow(h shopHead, watch, hang string) {
	switch {
	case h.Status == "PENDING":
		o.tasks++
		if h.Info.Supplier == watch && watch != "" {
			o.watchedID, o.watchedAt = h.ID, time.Now()
		}
		return
	case h.Task == "SESSION":
		o.sessionError = h.Error
		return
	case h.Status == "ERROR" && (strings.Contains(h.Message, "503") || hang != "" && h.Info.Supplier == hang):
		o.unavailable++
	case h.Status == "ERROR":
		o.taskErrors = append(o.taskErrors, h.Error)
	case h.Status != "SUCCESS":
		o.taskErrors = append(o.taskErrors, "unknown status "+h.Status)
		return
	}
	o.ended++
	if h.ID == o.watchedID && !o.watchedAt.IsZero() {
		o.watched = append(o.watched, time.Since(o.watchedAt))
	}
}

// median is the result of the median round by sessions/s, and the range
// of sessions/s over the rounds.
func median(rs []*shopResult) (m *shopResult, lo, hi float64) {
	s := append([]*shopResult(nil), rs...)
	sort.Slice(s, func(i, j int) bool { return s[i].rate() < s[j].rate() })
	return s[len(s)/2], s[0].rate(), s[len(s)-1].rate()
}

func printShop(rows []shopRow, results map[string][]*shopResult, bound float64) {
	fmt.Printf("Each row is its median round by sessions/s (the range over the rounds in brackets); task errors and the suppliers' own failures count all rounds; the last column is the CPU the machine's other processes used meanwhile (of %d cores; not aggbench, the server or its PHP), the noise a shared machine adds. Latency bound (a server of zero cost): **%.0f sessions/s**.\n\n", runtime.NumCPU(), bound)
	fmt.Println("| service | sessions/s | of the bound | items/s (per search) | task errors beyond the suppliers' own | suppliers' own failures (503s, a hanging one) | first item p50 / p99 ms | CPU per search: server + PHP | memory in all: server RSS + PHP PSS | other processes' CPU (range) |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	var notes []string
	var calls, parts int64
	for _, row := range rows {
		rs := results[row.key]
		m, lo, hi := median(rs)
		var tasks, unavailable, errs, failed int
		for _, r := range rs {
			tasks, unavailable, errs, failed = tasks+r.tasks, unavailable+r.unavailable, errs+r.errorCount(), failed+r.failed
		}
		all, srv, php := m.cpuPerSearch()
		errCell := fmt.Sprintf("%s of %s", commas(float64(errs)), commas(float64(tasks)))
		if errs > 0 {
			errCell = "**" + errCell + "**"
		}
		perSearch := float64(m.items) / float64(max(m.sessions(), 1))
		mem := fmt.Sprintf("%s (%s + %s)", mb(m.mem.all), mb(m.mem.allRSS), mb(m.mem.allPHP))
		if row.kind != shopAggregator {
			mem = mb(m.mem.all)
		}
		oLo, oHi := rs[0].others, rs[0].others
		for _, r := range rs {
			oLo, oHi = min(oLo, r.others), max(oHi, r.others)
		}
		ofBound := fmt.Sprintf("%.0f%%", 100*m.rate()/bound)
		if row.instant {
			ofBound = "—" // the bound is the suppliers' latency
		}
		fmt.Printf("| %s | %.1f (%.1f–%.1f) | %s | %s (%.0f) | %s | %s | %s / %s | %.1f ms (%.1f + %.1f) | %s | %.2f cores (%.2f–%.2f) |\n",
			row.name, m.rate(), lo, hi, ofBound, commas(float64(m.items)/m.window.Seconds()), perSearch,
			errCell, commas(float64(unavailable)), ms(pct(m.firsts, .5)), ms(pct(m.firsts, .99)), 1e3*all, 1e3*srv, 1e3*php, mem,
			m.others, oLo, oHi)
		notes = append(notes, rowNotes(row, rs, m, failed)...)
		calls, parts = calls+m.calls, parts+m.parts
	}
	fmt.Println()
	if calls > 0 {
		fmt.Printf("The suppliers answered %s calls in the median rounds' windows, %.1f parts per call.\n\n", commas(float64(calls)), float64(parts)/float64(calls))
	}
	if len(notes) > 0 {
		for _, n := range notes {
			fmt.Println("- " + n)
		}
		fmt.Println()
	}
	printShopTargets(results)
}

// rowNotes say what went wrong in a row (errors by code, sessions that did
// not close 1000) and what its row measures beyond the table.
func rowNotes(row shopRow, rs []*shopResult, m *shopResult, failed int) []string {
	var notes []string
	codes, closes := map[string]int{}, map[string]int{}
	for _, r := range rs {
		for c, n := range r.taskErrors {
			codes[c] += n
		}
		for c, n := range r.sessionErrors {
			closes[c] += n
		}
	}
	if len(codes) > 0 {
		notes = append(notes, fmt.Sprintf("**%s: tasks failed** beyond the suppliers' own failures, all rounds: %s. In the median round %.1f sessions/s closed 1000 with such errors (not counted in sessions/s; its CPU per search counts them).",
			row.key, countList(codes), float64(m.withErrors)/m.window.Seconds()))
	}
	if failed > 0 {
		notes = append(notes, fmt.Sprintf("**%s: %d sessions did not end normally**, all rounds: %s.", row.key, failed, countList(closes)))
	}
	if row.watch != "" {
		notes = append(notes, fmt.Sprintf("%s: %s's tasks ended after p50 %s / p90 %s / p99 ms %s (%d tasks in the median round); at most %d calls reached it in any one second.",
			row.key, row.watch, ms(pct(m.watched, .5)), ms(pct(m.watched, .9)), ms(pct(m.watched, .99)), len(m.watched), m.maxPerSecond))
	}
	if row.kind == shopNode {
		notes = append(notes, fmt.Sprintf("%s: node %s, ws %s.", row.key, nodeVersion, nodeWS))
	}
	if strings.HasPrefix(row.key, "exec") {
		all, _, _ := m.cpuPerSearch()
		notes = append(notes, fmt.Sprintf("%s: %.1f ms of CPU per call (per search ÷ %d calls); PSS per PHP process in flight %s (the most of any sample's mean).",
			row.key, 1e3*all/(shopSupplierCount+1), shopSupplierCount+1, mb(m.mem.perProcess)))
	}
	return notes
}

func countList(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || m[keys[i]] == m[keys[j]] && keys[i] < keys[j] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %s", k, commas(float64(m[k])))
	}
	return strings.Join(parts, ", ")
}

package main

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The shop rows compare services only if they do the same work: these
// tests run each against the fake suppliers and check every item against
// the mapping the rows promise (in stock, names trimmed, price × 1.18).

func TestMain(m *testing.M) {
	// The bench runs from the checkout's root (make bench); so do its tests.
	if err := os.Chdir("../.."); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

// wantItems is what a supplier's last answer yields, in order.
func wantItems(sup *shopSuppliers, supplier string) []map[string]any {
	var out []map[string]any
	for _, p := range sup.parts[:sup.api(supplier).lastParts.Load()] {
		if p.Stock <= 0 || p.Stock < p.MinOrder {
			continue
		}
		out = append(out, map[string]any{
			"code": strings.TrimSpace(p.Number), "brand": strings.TrimSpace(p.Maker), "name": strings.TrimSpace(p.Title),
			"price": p.Price * markupForTest, "currency": p.Currency, "quantity": float64(p.Stock),
			"multiplicity": float64(p.Multiplicity), "delivery": float64(p.DeliveryDays), "warehouse": p.Warehouse, "supplier": supplier,
		})
	}
	return out
}

const markupForTest = 1.18 // shop.php's MARKUP, bench/goshop's and bench/nodeshop's

// checkItems fails the test when a supplier's items are not the mapping of its parts.
func checkItems(t *testing.T, sup *shopSuppliers, supplier string, got []map[string]any) {
	t.Helper()
	want := wantItems(sup, supplier)
	if len(got) != len(want) {
		t.Fatalf("%s: %d items, its answer had %d parts in stock", supplier, len(got), len(want))
	}
	for i, g := range got {
		for k, w := range want[i] {
			if k == "price" {
				// Rounded to cents: PHP's round() and Go's math.Round may part
				// at a half cent.
				if p, ok := g[k].(float64); !ok || math.Abs(p-w.(float64)) > 0.0051 {
					t.Fatalf("%s item %d: price %v, want %.4f", supplier, i, g[k], w)
				}
				continue
			}
			if g[k] != w {
				t.Fatalf("%s item %d: %s = %#v, want %#v (item %v)", supplier, i, k, g[k], w, g)
			}
		}
	}
}

// TestShopTranslators runs shop.php's items handler in php itself with
// each transport, one supplier call each. SoapClient runs as PHP's own
// when the kit's \Aggregator\SoapClient is not there yet (the same
// translator code, blocking); Guzzle needs \Aggregator\Http\GuzzleHandler.
func TestShopTranslators(t *testing.T) {
	if _, err := exec.LookPath("php"); err != nil {
		t.Skip("no php")
	}
	sup, down := startShopSuppliers(0), startShopSuppliers(1)
	defer sup.close()
	defer down.close()
	const run = `require 'src/autoload.php';
if (getenv('SHOP_NATIVE_SOAP') === '1' && !class_exists('Aggregator\SoapClient')) {
    eval('namespace Aggregator; class SoapClient extends \SoapClient {}');
}
$h = require 'cmd/aggbench/testdata/shop.php';
$out = [];
foreach ($h['suppliers'](['code' => 'CT-1', 'brand' => 'ctr', 'apikey' => '1', 'analog' => 1])['suppliers'] as $s) {
    try {
        $out[$s['class']] = $h['items']($s)['items'];
    } catch (\Aggregator\PublicError $e) {
        $out[$s['class']] = $e->getMessage();
    }
}
echo json_encode($out);`
	for _, call := range []string{"fetch", "stream", "soap", "guzzle"} {
		t.Run(call, func(t *testing.T) {
			if call == "guzzle" {
				if why := phpClass(`Aggregator\Http\GuzzleHandler`)(); why != "" {
					t.Skip(why)
				}
			}
			php := func(s *shopSuppliers, answers any) {
				cmd := exec.Command("php", "-d", "display_errors=stderr", "-r", run)
				cmd.Env = append(os.Environ(), s.env(2), "SHOP_CALL="+call, "SHOP_NATIVE_SOAP=1")
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("php: %v: %s", err, out)
				}
				if err := json.Unmarshal(out, answers); err != nil {
					t.Fatalf("%v: %s", err, out)
				}
			}
			var got map[string][]map[string]any
			if php(sup, &got); len(got) != 2 {
				t.Fatalf("items of %d suppliers, want 2: %v", len(got), got)
			}
			for name, items := range got {
				checkItems(t, sup, name, items)
			}
			// Suppliers answering 503: the PublicError the bench counts apart.
			var refused map[string]string
			if php(down, &refused); len(refused) != 2 {
				t.Fatalf("%d answers, want 2: %v", len(refused), refused)
			}
			for name, msg := range refused {
				if !strings.Contains(msg, "(503)") {
					t.Errorf("%s answered 503: the translator said %q", name, msg)
				}
			}
		})
	}
}

// TestShopServices runs one search through each kind of row: every task
// sends PENDING, its items, SUCCESS, and the items are the mapping's.
func TestShopServices(t *testing.T) {
	if _, err := exec.LookPath("php"); err != nil {
		t.Skip("no php")
	}
	bin := filepath.Join(t.TempDir(), "aggregator")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/aggregator").CombinedOutput(); err != nil {
		t.Fatalf("build: %v: %s", err, out)
	}
	*binary = bin
	if why := goShopBuilt(); why != "" {
		t.Fatal(why)
	}
	defer os.RemoveAll(filepath.Dir(goShopBinary))
	sup, down := startShopSuppliers(0), startShopSuppliers(1)
	defer sup.close()
	defer down.close()
	const suppliers = 3
	for _, row := range []shopRow{
		{key: "fetch", call: "fetch", args: fixed("-Daggregator.pool.executor=2")},
		{key: "stream", call: "stream", args: fixed("-Daggregator.pool.executor=4")},
		{key: "go", kind: shopGo},
		{key: "node", kind: shopNode, needs: nodeShopReady},
	} {
		t.Run(row.key, func(t *testing.T) {
			if row.needs != nil {
				if why := row.needs(); why != "" {
					t.Skip(why)
				}
			}
			srv := row.start(sup, suppliers)
			defer srv.stop()
			checkSearch(t, sup, srv.ws, suppliers, "SUCCESS")
			// Every supplier answering 503: each task an ERROR the bench
			// tells from other task errors by its _message.
			srv503 := row.start(down, suppliers)
			defer srv503.stop()
			checkSearch(t, down, srv503.ws, suppliers, "ERROR 503")
		})
	}
}

// checkSearch runs one search and checks its messages task by task: each
// task ends as want says, "SUCCESS" or "ERROR 503" (an ERROR whose
// _message says 503).
func checkSearch(t *testing.T, sup *shopSuppliers, url string, suppliers int, want string) {
	t.Helper()
	type task struct {
		supplier string
		items    []map[string]any
		ended    string
	}
	tasks := map[float64]*task{}
	var problems []string
	code, err := converse(context.Background(), url, `{"code":"CT-1","brand":"ctr","apikey":"1","analog":1}`, func(m []byte) {
		var msg map[string]any
		if err := json.Unmarshal(m, &msg); err != nil {
			problems = append(problems, "not JSON: "+string(m))
			return
		}
		id, _ := msg["_id"].(float64)
		info, _ := msg["_info"].(map[string]any)
		status, _ := msg["_status"].(string)
		tk := tasks[id]
		switch {
		case status == "PENDING" && tk == nil && msg["_task"] == "ITEMS":
			tasks[id] = &task{supplier: info["supplier"].(string)}
		case tk == nil || tk.ended != "":
			problems = append(problems, "a message outside its task: "+string(m))
		case status == "SENDING":
			for k := range msg {
				if strings.HasPrefix(k, "_") {
					delete(msg, k)
				}
			}
			tk.items = append(tk.items, msg)
		case status == "ERROR":
			tk.ended = status
			if msg, _ := msg["_message"].(string); strings.Contains(msg, "503") {
				tk.ended += " 503"
			}
		default:
			tk.ended = status
		}
	})
	if err != nil || code != 1000 {
		t.Fatalf("close %d, %v", code, err)
	}
	if len(problems) > 0 {
		t.Fatal(strings.Join(problems, "\n"))
	}
	if len(tasks) != suppliers {
		t.Fatalf("%d tasks, want %d", len(tasks), suppliers)
	}
	items := 0
	for _, tk := range tasks {
		if tk.ended != want {
			t.Fatalf("%s ended %q, want %q", tk.supplier, tk.ended, want)
		}
		checkItems(t, sup, tk.supplier, tk.items)
		items += len(tk.items)
	}
	t.Logf("%d tasks, %d items", len(tasks), items)
}

// TestShopRowNotesSayErrors: a row whose tasks or sessions failed says
// so, by error code, under the table.
func TestShopRowNotesSayErrors(t *testing.T) {
	r := &shopResult{window: 10e9, withErrors: 4, failed: 1, mem: &sampler{},
		taskErrors: map[string]int{"E_SCRIPT_CANCELLED": 30, "E_SCRIPT_TIMEOUT": 2}, sessionErrors: map[string]int{"close 1011 E_SESSION_TIMEOUT": 1}}
	notes := strings.Join(rowNotes(shopRow{key: "fetch"}, []*shopResult{r}, r, r.failed), "\n")
	for _, want := range []string{"fetch: tasks failed", "E_SCRIPT_CANCELLED 30, E_SCRIPT_TIMEOUT 2", "0.4 sessions/s closed 1000 with such errors",
		"1 sessions did not end normally", "close 1011 E_SESSION_TIMEOUT 1"} {
		if !strings.Contains(notes, want) {
			t.Errorf("the notes lack %q:\n%s", want, notes)
		}
	}
	clean := &shopResult{window: 10e9, clean: 5, mem: &sampler{}, taskErrors: map[string]int{}, sessionErrors: map[string]int{}}
	if n := rowNotes(shopRow{key: "go"}, []*shopResult{clean}, clean, 0); len(n) != 0 {
		t.Errorf("a clean row has notes: %q", n)
	}
}

package forkserver

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// spec6Codes are the request codes of SPEC §6's scenarios.
var spec6Codes = []string{"normal", "analog", "mixed", "emptySuppliers", "suppliersTimeout", "suppliersError",
	"suppliersNotJson", "suppliersBadResponse", "emptyItems", "itemsTimeout", "itemsError", "itemsBadJson",
	"itemsBadResponse", "sessionTimeout"}

// demoReady is what the prepend file says on stderr once it is loaded: a
// script that sleeps past any script timeout (timeout-*) is killed then,
// both ways, as the exec runner's timeout would, at the same point of it.
const demoReady = "AGGREGATOR-BACKTRACE-READY\n"

// TestParityDemoAndLegacy runs the demo scripts (script/suppliers.php,
// script/items.php) with every SPEC §6 scenario's input, and the
// first-implementation scripts of script/legacy/, as the exec runner
// starts them (the prepend file, the report pipe on fd 3, the env it
// adds), through the fork server and as a new php, and compares what
// they give; the items inputs are the suppliers elements the suppliers
// script answered (and the nested suppliers an analog answer holds).
func TestParityDemoAndLegacy(t *testing.T) {
	if testing.Short() {
		t.Skip("runs PHP about 100 times")
	}
	root := repoRoot(t)
	s := newServer(t)
	flags := []string{"-d", "auto_prepend_file=" + filepath.Join(root, "src", "prepend.php"), "-d", "display_errors=stderr"}
	env := append(os.Environ(), "DEMO_DELAY_MS=0", "AGGREGATOR_REPORT_FD=3", "AGGREGATOR_OUTPUT_LIMIT=1048576",
		fmt.Sprintf("AGGREGATOR_DEADLINE=%.3f", float64(time.Now().Add(time.Hour).UnixMicro())/1e6))
	both := func(t *testing.T, script, input string, killOn string) outcome {
		c := call{words: append(append([]string{"php"}, flags...), script), dir: root, env: env, stdin: input + "\n", killOn: killOn}
		want, got := runExec(t, c), runFork(t, s, c)
		compare(t, want, got)
		return want
	}
	items := map[string]string{} // class -> input, each class once
	for _, code := range spec6Codes {
		t.Run("suppliers "+code, func(t *testing.T) {
			killOn := ""
			if code == "suppliersTimeout" {
				killOn = demoReady
			}
			out := both(t, "script/suppliers.php", demoRequest(code), killOn)
			collectSuppliers(out.Stdout, items, 5)
		})
	}
	for len(items) > 0 {
		next := map[string]string{}
		for class, input := range items {
			t.Run("items "+class, func(t *testing.T) {
				killOn := ""
				if strings.HasPrefix(class, "timeout-") {
					killOn = demoReady
				}
				out := both(t, "script/items.php", input, killOn)
				collectSuppliers(out.Stdout, next, 2) // an analog answer's nested suppliers
			})
		}
		items = next
	}
	t.Run("legacy", func(t *testing.T) {
		legacy := map[string]string{}
		collectSuppliers(both(t, "script/legacy/suppliers.php", demoRequest("3310"), "").Stdout, legacy, 5)
		if len(legacy) != 2 {
			t.Fatalf("legacy suppliers: %v", legacy)
		}
		for _, input := range legacy {
			if out := both(t, "script/legacy/items.php", input, ""); !strings.Contains(out.Stdout, `"items"`) {
				t.Errorf("legacy items: %+v", out)
			}
		}
	})
}

// demoRequest is the suppliers input the session builds for a request code.
func demoRequest(code string) string {
	fields := map[string]any{"code": code, "brand": "ctr", "apikey": "111111", "analog": 1}
	b, _ := json.Marshal(map[string]any{"code": code, "brand": "ctr", "apikey": "111111", "analog": 1, "params": fields})
	return string(b)
}

// collectSuppliers adds up to max elements of an answer's "suppliers"
// array to into, by class, skipping classes already there.
func collectSuppliers(answer string, into map[string]string, max int) {
	var out struct {
		Suppliers []json.RawMessage `json:"suppliers"`
	}
	if json.Unmarshal([]byte(answer), &out) != nil {
		return
	}
	for i, el := range out.Suppliers {
		if i == max {
			break
		}
		var s struct {
			Class string `json:"class"`
		}
		if json.Unmarshal(el, &s) == nil && s.Class != "" && into[s.Class] == "" {
			into[s.Class] = string(el)
		}
	}
}

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// What a shop row needs before it can run: each says why not, or "".

// goShopBinary is bench/goshop, built by goShopBuilt into a directory
// shop() removes.
var goShopBinary string

func goShopBuilt() string {
	dir, err := os.MkdirTemp("", "aggbench-goshop-")
	if err != nil {
		return err.Error()
	}
	goShopBinary = filepath.Join(dir, "goshop")
	cmd := exec.Command("go", "build", "-o", goShopBinary, "./bench/goshop")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Sprintf("go build ./bench/goshop: %v: %s", err, out)
	}
	return ""
}

// nodeWS is the ws release the Node.js row runs on; it is installed with
// npm into nodeModules (outside the checkout, kept for the next run).
const nodeWS = "8.23.0"

var (
	nodeModules = filepath.Join(os.TempDir(), "aggbench-node-ws-"+nodeWS)
	nodeVersion string
)

func nodeShopReady() string {
	out, err := exec.Command("node", "--version").Output()
	if err != nil {
		return "no node here"
	}
	nodeVersion = strings.TrimSpace(string(out))
	if _, err := os.Stat(filepath.Join(nodeModules, "node_modules", "ws", "package.json")); err == nil {
		return ""
	}
	npm := exec.Command("npm", "install", "--prefix", nodeModules, "--no-audit", "--no-fund", "--no-package-lock", "ws@"+nodeWS)
	if out, err := npm.CombinedOutput(); err != nil {
		return fmt.Sprintf("npm install ws@%s failed: %v: %s", nodeWS, err, strings.TrimSpace(string(out)))
	}
	return ""
}

// phpClass needs a class of the PHP kit (src/), e.g. an adapter another
// change is adding.
func phpClass(class string) func() string {
	return func() string {
		code := fmt.Sprintf(`require 'src/autoload.php'; exit(class_exists(%q) ? 0 : 1);`, class)
		if exec.Command("php", "-r", code).Run() != nil {
			return fmt.Sprintf("the PHP kit has no `\\%s` yet", class)
		}
		return ""
	}
}

// configKey needs the binary to accept a -Dkey=value (a key another
// change is adding): `aggregator -Dkey=value call -h` reads the
// configuration and refuses an unknown key.
func configKey(kv string) func() string {
	return func() string {
		out, err := exec.Command(*binary, "-D"+kv, "call", "-h").CombinedOutput()
		switch {
		case err == nil:
			return ""
		case strings.Contains(string(out), "unknown key"):
			key, _, _ := strings.Cut(kv, "=")
			return fmt.Sprintf("%s does not know `%s` yet", *binary, key)
		default:
			return fmt.Sprintf("%s -D%s: %v: %s", *binary, kv, err, strings.TrimSpace(string(out)))
		}
	}
}

// shopTarget is one target of issues 24, 26 and 27 beside what was measured.
type shopTarget struct {
	what, measured string
	met            bool
}

// printShopTargets compares the median rounds: as shipped (the default
// configuration) against Go alone, and each later row against its target.
func printShopTargets(results map[string][]*shopResult) {
	get := func(key string) *shopResult {
		if len(results[key]) == 0 {
			return nil
		}
		m, _, _ := median(results[key])
		return m
	}
	var ts []shopTarget
	shipped, goAlone := get("fetch"), get("go")
	if shipped != nil {
		errs := 0
		for _, r := range results["fetch"] {
			errs += r.errorCount() + r.failed
		}
		ts = append(ts, shopTarget{"as shipped: no task error beyond the suppliers' own 503s (all rounds)", fmt.Sprintf("%s tasks or sessions failed", commas(float64(errs))), errs == 0})
	}
	if shipped != nil && goAlone != nil {
		sCPU, _, _ := shipped.cpuPerSearch()
		gCPU, _, _ := goAlone.cpuPerSearch()
		sP99, gP99 := pct(shipped.firsts, .99), pct(goAlone.firsts, .99)
		cpu := shopTarget{"as shipped: CPU per search ≤ Go alone's", fmt.Sprintf("%.1f ms against %.1f ms", 1e3*sCPU, 1e3*gCPU), sCPU <= gCPU}
		p99 := shopTarget{"as shipped: first item p99 < Go alone's", fmt.Sprintf("%s ms against %s ms", ms(sP99), ms(gP99)), len(shipped.firsts) > 0 && sP99 < gP99}
		if shipped.errorCount() > 0 || shipped.failed > 0 {
			// A search whose tasks failed cost less and showed its first
			// item sooner: no like work to compare.
			for _, t := range []*shopTarget{&cpu, &p99} {
				t.measured += "; not comparable: the row failed tasks"
				t.met = false
			}
		}
		ts = append(ts, shopTarget{"as shipped: sessions/s ≥ Go alone's", fmt.Sprintf("%.1f against %.1f (%s)", shipped.rate(), goAlone.rate(), share(shipped.rate(), goAlone.rate())), shipped.rate() >= goAlone.rate()}, cpu, p99)
	}
	for _, k := range []struct{ key, what string }{
		{"stream", "`file_get_contents` ≥ 90% of `fetch()`'s sessions/s"},
		{"soap", "`\\Aggregator\\SoapClient` ≥ 90% of `fetch()`'s sessions/s"},
		{"guzzle", "Guzzle on `GuzzleHandler` ≥ 90% of `fetch()`'s sessions/s"},
	} {
		if r := get(k.key); r != nil && shipped != nil {
			ts = append(ts, shopTarget{k.what, fmt.Sprintf("%.1f against %.1f (%s)", r.rate(), shipped.rate(), share(r.rate(), shipped.rate())),
				shipped.rate() > 0 && r.rate() >= 0.9*shipped.rate()})
		}
	}
	if r := get("hang"); r != nil && shipped != nil {
		p90 := pct(r.watched, .9)
		ts = append(ts, shopTarget{shopSingled + " hanging: its tasks end within 50 ms once its breaker is open (p90 of its tasks)", ms(p90) + " ms", len(r.watched) > 0 && p90.Milliseconds() < 50})
		hp, sp := pct(r.firsts, .99), pct(shipped.firsts, .99)
		ts = append(ts, shopTarget{shopSingled + " hanging: first item p99 within 20% of the row without it", fmt.Sprintf("%s ms against %s ms", ms(hp), ms(sp)), float64(hp) <= 1.2*float64(sp)})
	}
	if r := get("quota"); r != nil {
		ts = append(ts, shopTarget{shopSingled + " at 50 calls/s: it never sees more in one second", fmt.Sprintf("at most %d", r.maxPerSecond), r.maxPerSecond <= 50})
	}
	if f, e := get("exec-fork"), get("exec"); f != nil && e != nil {
		ts = append(ts, shopTarget{"exec mode: the fork server ≥ 5× fork+exec's sessions/s", fmt.Sprintf("%.1f against %.1f (%.1f×)", f.rate(), e.rate(), f.rate()/max(e.rate(), 1e-9)), f.rate() >= 5*e.rate()})
	}
	if len(ts) == 0 {
		return
	}
	fmt.Println("Targets: what the aggregator as shipped (the default configuration) should reach, and the later rows' own.")
	fmt.Println()
	fmt.Println("| target (issues 24, 26, 27; the median rounds) | measured | met |")
	fmt.Println("|---|---|---|")
	for _, t := range ts {
		met := "**no**"
		if t.met {
			met = "yes"
		}
		fmt.Printf("| %s | %s | %s |\n", t.what, t.measured, met)
	}
	fmt.Println()
}

// share is a as a percentage of b, or "—" when b is 0.
func share(a, b float64) string {
	if b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f%%", 100*a/b)
}

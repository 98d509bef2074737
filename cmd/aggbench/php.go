package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

var phpRounds = 7 // each benchmark runs this many times, interleaved with the others

// benchResult is one Go benchmark run.
type benchResult struct {
	jobs, goCPU, phpCPU float64
}

// phpSide runs the Go benchmarks of the PHP side: our pool against a raw
// goridge relay to the same worker.php, against a minimal PHP loop on that
// relay (the floor for worker.php), and against RoadRunner's pool
// (bench/rrpeer, a module of its own). The runs alternate, so a neighbour's
// burst on this shared machine hits all of them alike; each figure is the
// median of phpRounds runs.
func phpSide() {
	tmp, err := os.MkdirTemp("", "aggbench-php-")
	if err != nil {
		fail("%v", err)
	}
	defer os.RemoveAll(tmp)
	poolTest, rrTest := filepath.Join(tmp, "pool.test"), filepath.Join(tmp, "rr.test")
	build := func(dir, out string) {
		cmd := exec.Command("go", "test", "-c", "-o", out, ".")
		cmd.Dir, cmd.Stderr = dir, os.Stderr
		if err := cmd.Run(); err != nil {
			fail("build the benchmarks of %s: %v", dir, err)
		}
	}
	build("pool", poolTest)
	build(filepath.Join("bench", "rrpeer"), rrTest)

	type bench struct {
		row, bin, dir, name string
	}
	var benches []bench
	for _, n := range []int{1, 4} {
		w := fmt.Sprintf("/workers=%d$", n)
		benches = append(benches,
			bench{fmt.Sprintf("pool %d", n), poolTest, "pool", "^BenchmarkSupervisor$" + w},
			bench{fmt.Sprintf("raw %d", n), poolTest, "pool", "^BenchmarkRawRelay$" + w},
			bench{fmt.Sprintf("minimal %d", n), poolTest, "pool", "^BenchmarkMinimalLoop$" + w},
			bench{fmt.Sprintf("rr %d", n), rrTest, filepath.Join("bench", "rrpeer"), "^BenchmarkRoadRunner$" + w},
		)
	}
	runs := map[string][]benchResult{}
	for r := 0; r < phpRounds; r++ {
		for _, b := range benches {
			runs[b.row] = append(runs[b.row], runBench(b.bin, b.dir, b.name, "1s"))
		}
	}
	exec1 := runBench(poolTest, "pool", "^BenchmarkExec$", "2s")

	// The median run: on a shared machine the best of a few runs is one
	// lucky moment of one row, and the ratios between rows swung by 20%.
	median := func(row string) benchResult {
		rs := runs[row]
		sort.Slice(rs, func(i, j int) bool { return rs[i].jobs > rs[j].jobs })
		return rs[len(rs)/2]
	}
	span := func(row string) string {
		rs := runs[row]
		lo, hi := rs[0].jobs, rs[0].jobs
		for _, r := range rs {
			lo, hi = min(lo, r.jobs), max(hi, r.jobs)
		}
		return fmt.Sprintf("%s–%s", commas(lo), commas(hi))
	}
	fmt.Printf("### PHP side: the pool against a minimal PHP loop and RoadRunner's pool (echo job, the median of %d alternating 1 s runs)\n\n", phpRounds)
	fmt.Println("| | 1 worker: jobs/s (range) | Go / PHP CPU per job | 4 workers: jobs/s (range) | Go / PHP CPU per job |")
	fmt.Println("|---|---|---|---|---|")
	for _, row := range []struct{ key, name string }{
		{"pool", "**our pool** (`Supervisor`, worker.php)"},
		{"raw", "raw goridge relay, worker.php"},
		{"minimal", "raw goridge relay, minimal PHP loop"},
		{"rr", "RoadRunner's pool (v1.1.3), minimal PHP loop"},
	} {
		fmt.Printf("| %s |", row.name)
		for _, n := range []int{1, 4} {
			k := fmt.Sprintf("%s %d", row.key, n)
			b := median(k)
			fmt.Printf(" %s (%s) | %.0f / %.0f µs |", commas(b.jobs), span(k), b.goCPU, b.phpCPU)
		}
		fmt.Println()
	}
	fmt.Printf("| exec mode (`php` per call, 4 at once) | — | | %s | |\n\n", commas(exec1.jobs))
	ratio := func(a, b string) string { return fmt.Sprintf("%.0f%%", 100*median(a).jobs/median(b).jobs) }
	fmt.Println("| ratio | 1 worker | 4 workers |")
	fmt.Println("|---|---|---|")
	fmt.Printf("| pool / minimal PHP loop | **%s** | %s |\n", ratio("pool 1", "minimal 1"), ratio("pool 4", "minimal 4"))
	fmt.Printf("| pool / RoadRunner's pool | **%s** | %s |\n", ratio("pool 1", "rr 1"), ratio("pool 4", "rr 4"))
	fmt.Printf("| pool / raw relay (the Go side) | %s | %s |\n", ratio("pool 1", "raw 1"), ratio("pool 4", "raw 4"))
	fmt.Printf("| worker.php / minimal loop, both on the raw relay (the PHP side) | %s | %s |\n\n", ratio("raw 1", "minimal 1"), ratio("raw 4", "minimal 4"))
}

// runBench runs one benchmark of a compiled test binary and reads its
// jobs/s, go-µs/job and php-µs/job.
func runBench(bin, dir, name, benchtime string) benchResult {
	cmd := exec.Command(bin, "-test.run", "^$", "-test.bench", name, "-test.benchtime", benchtime)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		fail("benchmark %s: %v\n%s", name, err, out.String())
	}
	var r benchResult
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		for i := 1; i+1 < len(f); i++ {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "jobs/s":
				r.jobs = v
			case "go-µs/job":
				r.goCPU = v
			case "php-µs/job":
				r.phpCPU = v
			}
		}
	}
	if r.jobs == 0 {
		fail("benchmark %s printed no jobs/s:\n%s", name, out.String())
	}
	return r
}

package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestConfigSlowlog: aggregator.pool.slowlog is off by default, takes
// decimals and 0, and refuses a negative or non-number.
func TestConfigSlowlog(t *testing.T) {
	load := func(overrides map[string]string) (*Config, error) {
		return LoadConfig(Args{Overrides: overrides}, env(nil))
	}
	for v, want := range map[string]time.Duration{"": 0, "0": 0, "0.5": 500 * time.Millisecond, "3": 3 * time.Second} {
		o := map[string]string{}
		if v != "" {
			o["aggregator.pool.slowlog"] = v
		}
		c, err := load(o)
		if err != nil || c.Worker.Slowlog != want {
			t.Errorf("slowlog %q: %v, %v; want %v", v, c, err, want)
		}
	}
	for _, v := range []string{"-1", "soon"} {
		if _, err := load(map[string]string{"aggregator.pool.slowlog": v}); err == nil || !strings.Contains(err.Error(), "aggregator.pool.slowlog") {
			t.Errorf("slowlog %q: error %v, want one naming the key", v, err)
		}
	}
}

// TestConfigPrepend: exec mode resolves aggregator.script.prepend to an
// absolute path; empty turns it off; a missing file configured by hand is a
// warning, not a refusal to start.
func TestConfigPrepend(t *testing.T) {
	exec := func(prepend *string) *Config {
		t.Helper()
		o := map[string]string{"aggregator.pool.mode": "exec"}
		if prepend != nil {
			o["aggregator.script.prepend"] = *prepend
		}
		c, err := LoadConfig(Args{Overrides: o}, env(nil))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	want, _ := filepath.Abs("src/prepend.php")
	if c := exec(nil); c.Exec.Prepend != want {
		t.Errorf("default prepend %q, want %q", c.Exec.Prepend, want)
	}
	empty := ""
	if c := exec(&empty); c.Exec.Prepend != "" {
		t.Errorf("empty prepend gives %q", c.Exec.Prepend)
	}
	missing := "nope/prepend.php"
	c := exec(&missing)
	if c.Exec.Prepend != "" || len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "aggregator.script.prepend") {
		t.Errorf("missing prepend: %q, warnings %q", c.Exec.Prepend, c.Warnings)
	}
}

package main

import (
	"cmp"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/magiconair/properties"
	"github.com/theaspect/aggregator/pool"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// TestConfigPrecedence: defaults < properties file < PORT < -D.
func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a.properties")
	os.WriteFile(file, []byte("server.port=9001\naggregator.timeout.script=7\naggregator.pool.executor = 3\nAggregator.Fields.Items=goods\n"), 0o644)

	a, err := ParseArgs([]string{"-c", file, "-Daggregator.timeout.script=2.5"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(a, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 9001 || c.Server.ScriptTimeout != 2500*time.Millisecond || c.Worker.Workers != 3 || c.Exec.Processes != 3 || c.Server.ItemsField != "goods" {
		t.Errorf("got port %d script %v executors %d/%d items %q", c.Port, c.Server.ScriptTimeout, c.Worker.Workers, c.Exec.Processes, c.Server.ItemsField)
	}
	if c.Server.SessionTimeout != 30*time.Second || c.Address != "127.0.0.1" || c.Mode != "worker" {
		t.Errorf("defaults lost: %+v", c)
	}
	c, _ = LoadConfig(a, env(map[string]string{"PORT": "9002"}))
	if c.Port != 9002 {
		t.Errorf("PORT env: port %d", c.Port)
	}
	a.Overrides["server.port"] = "9003"
	c, _ = LoadConfig(a, env(map[string]string{"PORT": "9002"}))
	if c.Port != 9003 {
		t.Errorf("-D over PORT: port %d", c.Port)
	}
}

// TestConfigWorkingDirectory: application.properties in the working directory is read.
func TestConfigWorkingDirectory(t *testing.T) {
	wd, _ := os.Getwd()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "application.properties"), []byte("server.port=9100\naggregator.pool.mode=exec\naggregator.script.items=php -v\naggregator.script.suppliers=php -v\nmystery=1\n"), 0o644)
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	c, err := LoadConfig(Args{Overrides: map[string]string{}}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 9100 || c.Mode != "exec" {
		t.Errorf("port %d mode %s", c.Port, c.Mode)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "mystery") {
		t.Errorf("warnings %v, want one about the unknown key", c.Warnings)
	}
	if len(c.UnknownKeys) != 1 || !strings.Contains(c.UnknownKeys[0], `"mystery" in application.properties`) {
		t.Errorf("unknown keys %q, want mystery's", c.UnknownKeys)
	}
}

// TestShippedProperties: deploy/application.properties names every key and
// only known keys, and loads. It is checked, not made from the tags like
// docs/configuration.md's table: it is an operator's example, with
// PRODUCTION values and comments written for them. A named group's keys
// (PREFIX.NAME.KEY) need only be there in a comment, as an example.
func TestShippedProperties(t *testing.T) {
	const path = "deploy/application.properties"
	p, err := properties.LoadFile(path, properties.UTF8)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, k := range p.Keys() {
		if !configKeys.known(k) {
			t.Errorf("deploy/application.properties: unknown key %s", k)
		}
		seen[k] = true
	}
	for _, s := range configKeys.specs {
		if s.grouped() && !strings.Contains(string(raw), s.Key) || !s.grouped() && !seen[s.Key] {
			t.Errorf("deploy/application.properties lacks %s", s.Key)
		}
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	for arg, key := range map[string]string{
		"-Daggregator.pool.mode=fast":              "aggregator.pool.mode",
		"-Daggregator.timeout.session=-1":          "aggregator.timeout.session",
		"-Daggregator.pool.executor=x":             "aggregator.pool.executor",
		"-Dserver.trusted-proxies=nonsense":        "server.trusted-proxies",
		"-Daggregator.fields.request=":             "aggregator.fields.request",
		"-Daggregator.worker.command=nophp-x":      "aggregator.worker.command",
		"-Daggregator.limit.send-queue-bytes=1000": "aggregator.limit.send-queue-bytes",
		"-Daggregator.ops.port=x":                  "aggregator.ops.port",
		"-Daggregator.ops.port=8000":               "aggregator.ops.port", // server.port's
		"-Daggregator.ops.address=ops.example":     "aggregator.ops.address",
		"-Daggregator.ops.pprof=maybe":             "aggregator.ops.pprof",
		"-Daggregator.limit.connections=-1":        "aggregator.limit.connections",
		"-Daggregator.timeout.idle=0":              "aggregator.timeout.idle",
		"-Daggregator.gc.heap-floor=-1":            "aggregator.gc.heap-floor",
		"-Daggregator.gc.heap-floor=16MB":          "aggregator.gc.heap-floor",
	} {
		a, err := ParseArgs([]string{arg})
		if err != nil {
			t.Fatal(err)
		}
		_, err = LoadConfig(a, env(nil))
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: error %v, want one naming %s", arg, err, key)
		}
	}
}

func TestParseArgs(t *testing.T) {
	a, err := ParseArgs([]string{"prod.properties", "-Dserver.port=1", "call", "items", "{}"})
	if err != nil {
		t.Fatal(err)
	}
	if a.ConfigFile != "prod.properties" || a.Overrides["server.port"] != "1" || strings.Join(a.Rest, " ") != "call items {}" {
		t.Errorf("%+v", a)
	}
	if _, err := ParseArgs([]string{"-Dnovalue"}); err == nil {
		t.Error("-Dnovalue accepted")
	}
}

// TestConfigUnknownKeys: a mistyped key names the key it meant. Given with
// -D it stops the start (it was typed for this run); in the properties file
// it is a warning (the file outlives releases: a key a newer release knows
// must not stop an older one after a rollback).
func TestConfigUnknownKeys(t *testing.T) {
	for typo, want := range map[string]string{
		"aggregator.worker.handler":    "did you mean aggregator.worker.handlers?",
		"aggregator.timeout.scripts":   "did you mean aggregator.timeout.script?",
		"Aggregator.Pool.Executors":    "did you mean aggregator.pool.executor?",
		"server.prot":                  "did you mean server.port?",
		"worker.handlers":              "did you mean aggregator.worker.handlers?",
		"aggregator.pool.concurency":   "did you mean aggregator.pool.concurrency?",
		"something.else.entirely":      "docs/configuration.md lists every key",
		"aggregator.nothing.like.it.x": "docs/configuration.md lists every key",
	} {
		a, err := ParseArgs([]string{"-D" + typo + "=x"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = LoadConfig(a, env(nil))
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Key != strings.ToLower(typo) || !strings.Contains(err.Error(), "unknown key given with -D") ||
			!strings.Contains(err.Error(), want) {
			t.Errorf("-D%s=x: error %v, want a ConfigError naming the key and %q", typo, err, want)
		}
	}

	file := filepath.Join(t.TempDir(), "old.properties")
	os.WriteFile(file, []byte("aggregator.worker.handler=x.php\naggregator.future.key=1\n"), 0o644)
	c, err := LoadConfig(Args{ConfigFile: file, Overrides: map[string]string{}}, env(nil))
	if err != nil {
		t.Fatalf("unknown keys in the file stop the start: %v", err)
	}
	want := []string{
		`unknown key "aggregator.future.key" in ` + file + " (docs/configuration.md lists every key)",
		`unknown key "aggregator.worker.handler" in ` + file + "; did you mean aggregator.worker.handlers?",
	}
	if strings.Join(c.UnknownKeys, "\n") != strings.Join(want, "\n") {
		t.Errorf("unknown keys:\n%s\nwant:\n%s", strings.Join(c.UnknownKeys, "\n"), strings.Join(want, "\n"))
	}
	if len(c.Warnings) != 2 || !strings.HasSuffix(c.Warnings[1], "did you mean aggregator.worker.handlers? (ignored)") {
		t.Errorf("warnings %q, want one per unknown key", c.Warnings)
	}
}

// TestCallRefusesUnknownKeys: `call` does not run with a key it does not
// know, even from the file: exit 2, and the message names the likely key.
func TestCallRefusesUnknownKeys(t *testing.T) {
	file := filepath.Join(t.TempDir(), "dev.properties")
	os.WriteFile(file, []byte("aggregator.worker.handler=x.php\n"), 0o644)
	c, err := LoadConfig(Args{ConfigFile: file, Overrides: map[string]string{}}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr strings.Builder
	code := runCall(c, []string{"items", `{"class":"normal-1"}`}, &stdout, &stderr)
	if code != 2 || stdout.Len() != 0 || !strings.Contains(stderr.String(), "did you mean aggregator.worker.handlers?") {
		t.Errorf("call with an unknown key: exit %d, stdout %q, stderr %q; want exit 2 and the key it meant", code, stdout.String(), stderr.String())
	}
}

func TestEditDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"a", "", 1}, {"kitten", "sitting", 3}, {"handler", "handlers", 1}, {"prot", "port", 2}} {
		if got := editDistance(c.a, c.b); got != c.d {
			t.Errorf("editDistance(%q, %q) = %d, want %d", c.a, c.b, got, c.d)
		}
	}
}

// TestConfigConnections: aggregator.limit.connections' default is what
// RLIMIT_NOFILE leaves after PHP's pipes and the log files, at least a
// quarter of it; an explicit value past that is warned about, not refused.
func TestConfigConnections(t *testing.T) {
	for _, tc := range []struct {
		set, nofile, want int
		warns             bool
	}{
		{0, 65536, 65536 - (128 + 4*20 + 20), false},
		{0, 256, 64, false}, // 256 - 228 is less than a quarter
		{0, 0, 10000, false},
		{1000, 65536, 1000, false},
		{60000, 1024, 60000, true},
	} {
		c := &Config{Worker: pool.WorkerConfig{Workers: 20, Concurrency: 1}, MaxConnections: tc.set}
		r := &resolver{}
		r.connections(c, tc.nofile, tc.set != 0)
		if c.MaxConnections != tc.want || (len(r.warnings) > 0) != tc.warns || r.err != nil {
			t.Errorf("set %d, RLIMIT_NOFILE %d: got %d, warnings %v, error %v; want %d, warning %v",
				tc.set, tc.nofile, c.MaxConnections, r.warnings, r.err, tc.want, tc.warns)
		}
	}
}

// TestConfigFitsTheMachine: with neither aggregator.limit.sessions nor
// .connections set, both fit RLIMIT_NOFILE and the start says so at INFO
// (a newcomer's `make run` on a machine with a small limit gets no WARN it
// cannot act on); a WARN is left for sessions the operator set beyond the
// connections, naming what to raise.
func TestConfigFitsTheMachine(t *testing.T) {
	room := func(nofile int) int { return nofile - (128 + 4*20 + 20) }
	for _, tc := range []struct {
		name                  string
		set                   map[string]string
		nofile                int
		sessions, connections int
		notice, warning       string // "" when none; else a part of the one line
	}{
		{"a large limit", nil, 1 << 20, 20000, room(1 << 20), "", ""},
		{"a small limit", nil, 20000, room(20000), room(20000), "aggregator.limit.sessions=19772, one per connection: " +
			"aggregator.limit.connections=19772 is what RLIMIT_NOFILE=20000 leaves after PHP's pipes and the log files; raise LimitNOFILE (ulimit -n) for up to 20000", ""},
		{"0 is the default", map[string]string{"aggregator.limit.sessions": "0"}, 4096, room(4096), room(4096), "RLIMIT_NOFILE=4096", ""},
		{"an unknown limit", nil, 0, 10000, 10000, "while RLIMIT_NOFILE is unknown; set aggregator.limit.connections", ""},
		{"connections set", map[string]string{"aggregator.limit.connections": "500"}, 1 << 20, 500, 500, "aggregator.limit.connections=500 is as configured; raise aggregator.limit.connections for up to 20000", ""},
		{"sessions set within", map[string]string{"aggregator.limit.sessions": "1000"}, 20000, 1000, room(20000), "", ""},
		{"sessions set beyond the limit", map[string]string{"aggregator.limit.sessions": "20000"}, 20000, 20000, room(20000), "",
			"aggregator.limit.sessions=20000 is more than the connections served at once (aggregator.limit.connections=19772 is what RLIMIT_NOFILE=20000 leaves " +
				"after PHP's pipes and the log files): past them a browser gets 503 at connect; raise LimitNOFILE (ulimit -n) or lower aggregator.limit.sessions"},
		{"sessions set beyond connections set", map[string]string{"aggregator.limit.sessions": "600", "aggregator.limit.connections": "500"}, 1 << 20, 600, 500, "",
			"raise aggregator.limit.connections or lower aggregator.limit.sessions"},
	} {
		c, err := loadConfig(Args{Overrides: tc.set}, env(nil), tc.nofile)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if c.Server.MaxSessions != tc.sessions || c.MaxConnections != tc.connections {
			t.Errorf("%s: sessions %d, connections %d; want %d and %d", tc.name, c.Server.MaxSessions, c.MaxConnections, tc.sessions, tc.connections)
		}
		for _, want := range []struct {
			lines []string
			part  string
			level string
		}{{c.Notices, tc.notice, "INFO"}, {c.Warnings, tc.warning, "WARN"}} {
			if want.part == "" && len(want.lines) > 0 || want.part != "" && (len(want.lines) != 1 || !strings.Contains(want.lines[0], want.part)) {
				t.Errorf("%s: %s lines %q, want %s", tc.name, want.level, want.lines, cmp.Or(want.part, "none"))
			}
		}
	}
}

package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/magiconair/properties"
	"github.com/spf13/viper"
	"github.com/theaspect/aggregator/pool"
)

// defaults are every configuration key with its default value. Keys of the
// first implementation keep their names; new ones follow their style.
var defaults = map[string]string{
	"server.port":                         "8000",
	"server.address":                      "127.0.0.1",
	"server.trusted-proxies":              "127.0.0.1,::1",
	"aggregator.ops.address":              "127.0.0.1",
	"aggregator.ops.port":                 "",
	"aggregator.ops.pprof":                "false",
	"logging.level.me.blzr.aggregator":    "INFO",
	"aggregator.script.items":             "php -d display_errors=stderr script/items.php",
	"aggregator.script.suppliers":         "php -d display_errors=stderr script/suppliers.php",
	"aggregator.script.prepend":           "src/prepend.php",
	"aggregator.timeout.script":           "5",
	"aggregator.timeout.session":          "30",
	"aggregator.timeout.idle":             "60",
	"aggregator.pool.executor":            "20",
	"aggregator.pool.concurrency":         "1",
	"aggregator.pool.mode":                "worker",
	"aggregator.pool.session-limit":       "0",
	"aggregator.pool.max-jobs":            "auto",
	"aggregator.pool.max-memory":          "128",
	"aggregator.pool.idle-check":          "10",
	"aggregator.pool.start-timeout":       "10",
	"aggregator.pool.watch":               "false",
	"aggregator.pool.slowlog":             "0",
	"aggregator.worker.command":           "php -d display_errors=stderr -d memory_limit=64M worker.php",
	"aggregator.worker.handlers":          "script/handlers.php",
	"aggregator.worker.http-wrapper":      "true",
	"aggregator.fields.request":           "code,brand,apikey,analog",
	"aggregator.fields.items":             "items",
	"aggregator.fields.suppliers":         "suppliers",
	"aggregator.fields.info":              "info",
	"aggregator.fields.faulty":            "code,brand,analog",
	"aggregator.log.file":                 "logs/aggregator.log",
	"aggregator.log.max-size":             "10",
	"aggregator.log.max-files":            "10",
	"aggregator.log.console":              "true",
	"aggregator.limit.sessions":           "20000",
	"aggregator.limit.connections":        "0",
	"aggregator.limit.request-size":       "65536",
	"aggregator.limit.output-size":        "16777216",
	"aggregator.limit.session-tasks":      "10000",
	"aggregator.limit.send-queue":         "100000",
	"aggregator.limit.send-queue-bytes":   "0",
	"aggregator.fetch.max-conns-per-host": "1024",
	"aggregator.ws.allowed-origins":       "",
	"aggregator.drain.until-warm":         "false",
	"aggregator.gc.heap-floor":            "8",
}

// Config is the validated configuration.
type Config struct {
	Address        string
	Port           int
	TrustedProxies []*net.IPNet
	OpsAddress     string // the operators' listener; see OpsPort
	OpsPort        int    // -1: no operators' listener (the default)
	Pprof          bool   // serve /debug/pprof/ with the operators' endpoints
	LogLevel       string
	LogFile        string
	LogMaxSize     int
	LogMaxFiles    int
	LogConsole     bool

	Mode            string
	ScriptItems     []string
	ScriptSuppliers []string
	WorkerCommand   []string
	WorkerHandlers  string
	HTTPWrapper     bool // http(s):// streams of worker jobs go through the aggregator (SPEC §17)
	ScriptTimeout   time.Duration
	SessionTimeout  time.Duration
	IdleTimeout     time.Duration // an idle keep-alive HTTP connection is closed after it
	Executors       int
	Concurrency     int // jobs one worker runs at once (worker mode)
	SessionLimit    int
	MaxJobs         int
	MaxMemoryMB     int
	IdleCheck       time.Duration
	StartTimeout    time.Duration
	Watch           bool          // reload the workers when a PHP file changes (development)
	Slowlog         time.Duration // log the backtrace of a job running this long; 0 = off
	ScriptPrepend   string        // exec mode: absolute path of the auto_prepend_file; "" = none

	RequestFields  []string
	FaultyFields   []string
	ItemsField     string
	SuppliersField string
	InfoField      string

	MaxSessions     int
	MaxConnections  int // TCP connections served at once on the main port
	FileLimit       int // RLIMIT_NOFILE, 0 when unknown
	MaxRequestSize  int
	MaxOutputSize   int
	MaxSessionTasks int
	SendQueue       int
	SendQueueBytes  int
	AllowedOrigins  []string
	UntilWarm       bool // refuse new sessions (503) until PHP has run once: instances behind nginx

	FetchConnsPerHost int // connections fetch() opens to one supplier host at once
	HeapFloorMB       int // no garbage collection before the Go heap reaches this (internal/gcfloor); 0 = Go's pacing

	Warnings []string // unknown keys and the like, logged once logging is up
	// UnknownKeys describe the keys of the properties file that are not
	// configuration keys (with the key each was probably meant to be). The
	// server only warns about them; `call` refuses to run.
	UnknownKeys []string
}

// Capacity is how many tasks run at once: PHP processes times the jobs
// each runs at once.
func (c *Config) Capacity() int { return c.Executors * max(c.Concurrency, 1) }

// ConfigError names the key whose value is wrong.
type ConfigError struct {
	Key, Msg string
}

func (e *ConfigError) Error() string { return fmt.Sprintf("config: %s: %s", e.Key, e.Msg) }

// Args are the parsed command-line words.
type Args struct {
	ConfigFile string            // -c/--config FILE, or a lone *.properties
	Overrides  map[string]string // -Dkey=value
	Rest       []string          // sub-command and its words
}

// checksFiles says whether the configuration must name PHP files that
// exist here: not for commands that only talk to a running server.
func (a Args) checksFiles() bool { return len(a.Rest) == 0 || a.Rest[0] != "workers" }

// ParseArgs reads the command line: -c FILE, FILE.properties, -Dkey=value;
// the first other word starts a sub-command.
func ParseArgs(args []string) (Args, error) {
	a := Args{Overrides: map[string]string{}}
	for i := 0; i < len(args); i++ {
		w := args[i]
		switch {
		case strings.HasPrefix(w, "-D"):
			kv := strings.TrimPrefix(w, "-D")
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return a, fmt.Errorf("bad override %q: want -Dkey=value", w)
			}
			a.Overrides[strings.ToLower(k)] = v
		case w == "-c" || w == "--config" || w == "-config":
			if i+1 >= len(args) {
				return a, fmt.Errorf("%s needs a file name", w)
			}
			i++
			a.ConfigFile = args[i]
		case strings.HasPrefix(w, "--config="):
			a.ConfigFile = strings.TrimPrefix(w, "--config=")
		case strings.HasSuffix(w, ".properties") && a.ConfigFile == "" && len(a.Rest) == 0:
			a.ConfigFile = w
		default:
			a.Rest = append(a.Rest, w)
		}
	}
	return a, nil
}

// LoadConfig merges defaults < properties file < PORT env < -D overrides and
// validates the result. A missing default file is fine; a named one must exist.
//
// An unknown key given with -D is an error: it was typed for this run, and
// running without it (a mistyped aggregator.worker.handlers runs the demo
// handlers) only looks like success. An unknown key in the properties file
// is a warning: the file outlives releases, and a key that a newer release
// knows must not stop an older one from starting after a rollback.
func LoadConfig(a Args, getenv func(string) string) (*Config, error) {
	v := viper.New()
	for k, d := range defaults {
		v.SetDefault(k, d)
	}
	var warnings, unknown []string
	file := a.ConfigFile
	if file == "" {
		if _, err := os.Stat("application.properties"); err == nil {
			file = "application.properties"
		}
	}
	if file != "" {
		// viper no longer reads .properties itself (since 1.20), so the file
		// is parsed by magiconair/properties and its values handed to viper.
		props, err := properties.LoadFile(file, properties.UTF8)
		if err != nil {
			return nil, &ConfigError{"config file", err.Error()}
		}
		for _, k := range props.Keys() {
			key := strings.ToLower(k)
			if _, known := defaults[key]; !known {
				unknown = append(unknown, unknownKey(k, "in "+file))
			}
			v.Set(key, props.GetString(k, ""))
		}
	}
	if p := getenv("PORT"); p != "" {
		v.Set("server.port", p)
	}
	overrides := make([]string, 0, len(a.Overrides))
	for k := range a.Overrides {
		overrides = append(overrides, k)
	}
	sort.Strings(overrides) // the first unknown one is the same every run
	for _, k := range overrides {
		if _, known := defaults[k]; !known {
			return nil, &ConfigError{k, "unknown key given with -D" + didYouMean(k)}
		}
		v.Set(k, a.Overrides[k])
	}
	sort.Strings(unknown)
	c, err := build(v, a.checksFiles())
	if err != nil {
		return nil, err
	}
	for _, u := range unknown {
		warnings = append(warnings, u+" (ignored)")
	}
	c.Warnings = append(warnings, c.Warnings...)
	c.UnknownKeys = unknown
	return c, nil
}

// reader collects the first bad key while reading values.
type reader struct {
	v        *viper.Viper
	err      error
	files    bool     // check that programs and scripts exist
	warnings []string // problems worth a log line, not a refusal to start
}

func (r *reader) str(key string) string { return strings.TrimSpace(r.v.GetString(key)) }

func (r *reader) fail(key, format string, args ...any) {
	if r.err == nil {
		r.err = &ConfigError{key, fmt.Sprintf(format, args...)}
	}
}

func (r *reader) int(key string, min int) int {
	s := r.str(key)
	n, err := strconv.Atoi(s)
	if err != nil {
		r.fail(key, "not a whole number: %q", s)
		return 0
	}
	if n < min {
		r.fail(key, "must be at least %d, got %d", min, n)
	}
	return n
}

// autoValue stands for "auto" until the value it depends on is known.
const autoValue = -1

// defaultMaxJobs is aggregator.pool.max-jobs per job a worker runs at once.
// Starting a PHP process costs ~21 ms of CPU (php -r ” with Debian's
// extensions): replaced every 1000 jobs, a worker spent ~25 µs per job on
// its own replacement, as much as a small job itself. Leaks are caught by
// aggregator.pool.max-memory; this only bounds what memory cannot see.
const defaultMaxJobs = 10000

// intOrAuto is int, or autoValue for "auto".
func (r *reader) intOrAuto(key string, min int) int {
	if strings.EqualFold(r.str(key), "auto") {
		return autoValue
	}
	return r.int(key, min)
}

func (r *reader) seconds(key string) time.Duration {
	s := r.str(key)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		r.fail(key, "not a number of seconds: %q", s)
		return 0
	}
	if f <= 0 {
		r.fail(key, "must be more than 0 seconds, got %q", s)
	}
	return time.Duration(f * float64(time.Second))
}

// secondsOrOff is seconds where 0 (or nothing) means off.
func (r *reader) secondsOrOff(key string) time.Duration {
	s := r.str(key)
	if s == "" {
		return 0
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		r.fail(key, "not a number of seconds: %q", s)
		return 0
	}
	if f < 0 {
		r.fail(key, "must be 0 (off) or more seconds, got %q", s)
	}
	return time.Duration(f * float64(time.Second))
}

func (r *reader) list(key string) []string {
	var out []string
	for _, p := range strings.Split(r.str(key), ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (r *reader) bool(key string) bool {
	s := r.str(key)
	b, err := strconv.ParseBool(s)
	if err != nil {
		r.fail(key, "not true or false: %q", s)
	}
	return b
}

// command splits a command and checks that its program can be found and
// that every *.php file it names exists.
func (r *reader) command(key string) []string {
	words, err := pool.SplitCommand(r.str(key))
	if err != nil {
		r.fail(key, "%v", err)
		return nil
	}
	if !r.files {
		return words
	}
	if _, err := exec.LookPath(words[0]); err != nil {
		r.fail(key, "program %q not found: %v", words[0], errors.Unwrap(err))
		return words
	}
	for _, w := range words[1:] {
		if strings.HasSuffix(w, ".php") {
			if _, err := os.Stat(w); err != nil {
				r.fail(key, "missing script %q", w)
			}
		}
	}
	return words
}

// prepend is the exec scripts' auto_prepend_file as an absolute path (the
// scripts may run in another directory), or "" when it is off or missing.
// A missing file only costs the backtraces: a warning when it was
// configured, nothing for the default (a directory without src/).
func (r *reader) prepend(key string) string {
	p := r.str(key)
	if p == "" || !r.files {
		return ""
	}
	abs, err := filepath.Abs(p)
	if err == nil {
		_, err = os.Stat(abs)
	}
	if err != nil {
		if p != defaults[key] {
			r.warnings = append(r.warnings, fmt.Sprintf("%s: %v: exec scripts run without it (no backtraces)", key, err))
		}
		return ""
	}
	return abs
}

// fdHeadroom is how many file descriptors the process needs besides its
// connections: 4 per PHP process (three pipes and a pidfd), 1 per job in
// flight (a fetch() connection to a supplier), and 128 for the log files,
// listeners, the poller, the accept loop's reserve, DNS and the like.
func fdHeadroom(c *Config) int { return 128 + 4*c.Executors + c.Capacity() }

// fileLimit is RLIMIT_NOFILE (Go has raised the soft limit to the hard
// one at start), or 0 when unknown.
func fileLimit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<30 {
		return 0
	}
	return int(rl.Cur)
}

// connections sets aggregator.limit.connections' default, 0: what nofile
// (RLIMIT_NOFILE) leaves after fdHeadroom, but at least a quarter of it,
// so a tiny limit still serves; 10,000 when the limit is unknown. Running
// out of descriptors anyway is survived (the accept loop sheds load), so
// a cap or a limit that looks too small is only warned about.
func (r *reader) connections(c *Config, nofile int) {
	const key = "aggregator.limit.connections"
	room := nofile - fdHeadroom(c)
	switch {
	case c.MaxConnections == 0 && nofile == 0:
		c.MaxConnections = 10000
	case c.MaxConnections == 0:
		c.MaxConnections = max(room, nofile/4, 1)
	case nofile > 0 && c.MaxConnections > room:
		r.warnings = append(r.warnings, fmt.Sprintf("%s=%d leaves less than %d of RLIMIT_NOFILE=%d for PHP's pipes and the log files: "+
			"running out is answered with 503, but raise LimitNOFILE or lower the key", key, c.MaxConnections, fdHeadroom(c), nofile))
	}
	c.FileLimit = nofile
}

func build(v *viper.Viper, checkFiles bool) (*Config, error) {
	r := &reader{v: v, files: checkFiles}
	c := &Config{
		Address:        r.str("server.address"),
		Port:           r.int("server.port", 0),
		OpsAddress:     r.str("aggregator.ops.address"),
		OpsPort:        -1,
		Pprof:          r.bool("aggregator.ops.pprof"),
		LogLevel:       strings.ToUpper(r.str("logging.level.me.blzr.aggregator")),
		LogFile:        r.str("aggregator.log.file"),
		LogMaxSize:     r.int("aggregator.log.max-size", 1),
		LogMaxFiles:    r.int("aggregator.log.max-files", 1),
		LogConsole:     r.bool("aggregator.log.console"),
		Mode:           strings.ToLower(r.str("aggregator.pool.mode")),
		WorkerHandlers: r.str("aggregator.worker.handlers"),
		HTTPWrapper:    r.bool("aggregator.worker.http-wrapper"),
		ScriptTimeout:  r.seconds("aggregator.timeout.script"),
		SessionTimeout: r.seconds("aggregator.timeout.session"),
		IdleTimeout:    r.seconds("aggregator.timeout.idle"),
		Executors:      r.int("aggregator.pool.executor", 1),
		Concurrency:    r.int("aggregator.pool.concurrency", 1),
		SessionLimit:   r.int("aggregator.pool.session-limit", 0),
		MaxJobs:        r.intOrAuto("aggregator.pool.max-jobs", 0),
		MaxMemoryMB:    r.int("aggregator.pool.max-memory", 0),
		IdleCheck:      r.secondsOrOff("aggregator.pool.idle-check"),
		StartTimeout:   r.seconds("aggregator.pool.start-timeout"),
		Watch:          r.bool("aggregator.pool.watch"),
		Slowlog:        r.secondsOrOff("aggregator.pool.slowlog"),
		RequestFields:  r.list("aggregator.fields.request"),
		FaultyFields:   r.list("aggregator.fields.faulty"),
		ItemsField:     r.str("aggregator.fields.items"),
		SuppliersField: r.str("aggregator.fields.suppliers"),
		InfoField:      r.str("aggregator.fields.info"),

		MaxSessions:     r.int("aggregator.limit.sessions", 1),
		MaxConnections:  r.int("aggregator.limit.connections", 0),
		MaxRequestSize:  r.int("aggregator.limit.request-size", 2),
		MaxOutputSize:   r.int("aggregator.limit.output-size", 2),
		MaxSessionTasks: r.int("aggregator.limit.session-tasks", 1),
		SendQueue:       r.int("aggregator.limit.send-queue", 1),
		SendQueueBytes:  r.int("aggregator.limit.send-queue-bytes", 0),
		AllowedOrigins:  r.list("aggregator.ws.allowed-origins"),
		UntilWarm:       r.bool("aggregator.drain.until-warm"),

		FetchConnsPerHost: r.int("aggregator.fetch.max-conns-per-host", 0),
		HeapFloorMB:       r.int("aggregator.gc.heap-floor", 0),
	}
	if c.Port > 65535 {
		r.fail("server.port", "must be at most 65535, got %d", c.Port)
	}
	if r.str("aggregator.ops.port") != "" {
		switch c.OpsPort = r.int("aggregator.ops.port", 0); {
		case c.OpsPort > 65535:
			r.fail("aggregator.ops.port", "must be at most 65535, got %d", c.OpsPort)
		case c.OpsPort != 0 && c.OpsPort == c.Port:
			r.fail("aggregator.ops.port", "must differ from server.port (%d)", c.Port)
		}
	}
	if net.ParseIP(c.OpsAddress) == nil && c.OpsAddress != "localhost" {
		r.fail("aggregator.ops.address", "not an IP address: %q", c.OpsAddress)
	}
	if net.ParseIP(c.Address) == nil && c.Address != "localhost" && c.Address != "" {
		r.fail("server.address", "not an IP address: %q", c.Address)
	}
	switch c.LogLevel {
	case "DEBUG", "INFO", "WARN", "ERROR":
	default:
		r.fail("logging.level.me.blzr.aggregator", "want DEBUG, INFO, WARN or ERROR, got %q", c.LogLevel)
	}
	for _, p := range r.list("server.trusted-proxies") {
		if !strings.Contains(p, "/") {
			if strings.Contains(p, ":") {
				p += "/128"
			} else {
				p += "/32"
			}
		}
		_, n, err := net.ParseCIDR(p)
		if err != nil {
			r.fail("server.trusted-proxies", "not an IP or CIDR: %q", p)
			continue
		}
		c.TrustedProxies = append(c.TrustedProxies, n)
	}
	if len(c.RequestFields) == 0 {
		r.fail("aggregator.fields.request", "must name at least one field")
	}
	for _, k := range []string{"aggregator.fields.items", "aggregator.fields.suppliers", "aggregator.fields.info"} {
		if r.str(k) == "" {
			r.fail(k, "must not be empty")
		}
	}
	switch c.Mode {
	case "exec":
		c.ScriptSuppliers = r.command("aggregator.script.suppliers")
		c.ScriptItems = r.command("aggregator.script.items")
		c.ScriptPrepend = r.prepend("aggregator.script.prepend")
	case "worker":
		c.WorkerCommand = r.command("aggregator.worker.command")
		if _, err := os.Stat(c.WorkerHandlers); err != nil && r.files {
			r.fail("aggregator.worker.handlers", "missing handlers file %q", c.WorkerHandlers)
		}
	default:
		r.fail("aggregator.pool.mode", "unknown mode %q: want worker or exec", c.Mode)
	}
	if c.Mode == "exec" {
		c.Concurrency = 1 // a process per job
	}
	if c.MaxJobs == autoValue {
		// A worker is replaced after as many jobs as it could run in
		// 10,000 rounds: a worker running 256 jobs at once would otherwise
		// be replaced every few seconds, its replacement overlapping it.
		c.MaxJobs = defaultMaxJobs * max(c.Concurrency, 1)
	}
	if c.SessionLimit == 0 {
		// A quarter of the capacity keeps one huge search from starving
		// the rest; at least 4 so that no SPEC §6 scenario (at most 4 tasks
		// of one session at once, one of them sleeping) changes its outcome.
		c.SessionLimit = min(c.Capacity(), max(4, c.Capacity()/4))
	}
	switch {
	case c.SendQueueBytes == 0:
		// Room for one item of the largest answer, and as much again for
		// the messages around it: a browser that reads is never cut off.
		c.SendQueueBytes = 2 * c.MaxOutputSize
	case c.SendQueueBytes < c.MaxOutputSize:
		r.fail("aggregator.limit.send-queue-bytes", "must be 0 (twice aggregator.limit.output-size) or at least aggregator.limit.output-size (%d), got %d",
			c.MaxOutputSize, c.SendQueueBytes)
	}
	r.connections(c, fileLimit())
	if r.err != nil {
		return nil, r.err
	}
	c.Warnings = r.warnings
	return c, nil
}

package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/magiconair/properties"
	"github.com/spf13/viper"
	"github.com/theaspect/aggregator/pool"
	"github.com/theaspect/aggregator/server"
)

// Config is the whole configuration. Every key is one field, tagged with
// its key, default and doc (settings.go says how): the keys this program
// reads itself are here; the others are in the settings of the package
// that reads them, which main hands over whole. docs/configuration.md's
// table is made from these tags (TestConfigurationDoc).
type Config struct {
	Port    int    `key:"server.port" min:"0" max:"65535" default:"8000" doc:"port; the 'PORT' environment variable sets it too; '0' picks a free one (logged)"`
	Address string `key:"server.address" default:"127.0.0.1" doc:"listen address: localhost only unless set"`
	// MaxConnections is how many TCP connections the main port serves at once.
	MaxConnections int `key:"aggregator.limit.connections" min:"0" default:"0" doc:"TCP connections served at once on 'server.port'; past it a new one gets HTTP 503 with 'Retry-After' at once; '0' = what RLIMIT_NOFILE leaves after 128 + 4 × executor + jobs at once (at least a quarter of it)"`
	// IdleTimeout: an idle keep-alive HTTP connection is closed after it.
	IdleTimeout time.Duration `key:"aggregator.timeout.idle" default:"60" doc:"seconds an idle HTTP keep-alive connection stays open (keep nginx's upstream 'keepalive_timeout' below it)"`

	// OpsPort is the operators' listener's port; -1: none (the default).
	OpsPort    int    `key:"aggregator.ops.port" as:"int-or-off" min:"0" max:"65535" default:"" doc:"the operators' listener ('/metrics', '/workers', '/health', '/stats', pprof): a second port, so that several instances on one host need none by default; empty = off"`
	OpsAddress string `key:"aggregator.ops.address" default:"127.0.0.1" doc:"its address; never a public one"`

	LogLevel    string `key:"logging.level.me.blzr.aggregator" default:"INFO" doc:"'DEBUG', 'INFO', 'WARN' or 'ERROR'"`
	LogFile     string `key:"aggregator.log.file" default:"logs/aggregator.log" doc:"log file (relative to the working directory); lines are written every 100 ms, WARN and ERROR at once"`
	LogMaxSize  int    `key:"aggregator.log.max-size" min:"1" default:"10" doc:"MB per log file before it rotates"`
	LogMaxFiles int    `key:"aggregator.log.max-files" min:"1" default:"10" doc:"log files kept, the current one included"`
	LogConsole  bool   `key:"aggregator.log.console" default:"true" doc:"also log to stderr (journald); 'false' under systemd if the file is enough"`

	Mode Mode `key:"aggregator.pool.mode" default:"worker" doc:"'worker' (warm goridge workers) or 'exec' (a process per call)"`
	// Watch reloads the workers when a PHP file changes (development).
	Watch bool `key:"aggregator.pool.watch" default:"false" doc:"development: reload the workers when a PHP file under the handlers' directory or 'src/' changes"`

	// FetchConnsPerHost is how many connections fetch() opens to one supplier host at once.
	FetchConnsPerHost int `key:"aggregator.fetch.max-conns-per-host" min:"0" default:"1024" doc:"connections 'fetch()' opens to one supplier host at once (in use and idle)"`
	// HeapFloor is the bytes of Go heap before the first garbage collection (internal/gcfloor); 0 = Go's pacing.
	HeapFloor uint64 `key:"aggregator.gc.heap-floor" as:"megabytes" min:"0" default:"8" doc:"MB the server's Go heap may reach before a garbage collection, however small its live heap; past it 'GOGC' (env, default 100) paces as usual; '0' = Go's own pacing, which collects from 4 MB on ([operating.md](operating.md#memory-and-the-garbage-collector))"`

	Server server.Config     `doc:"Sessions, messages and their limits ('server.Config')"`
	Worker pool.WorkerConfig `doc:"PHP processes: worker mode, and the keys both modes read ('pool.WorkerConfig')"`
	Exec   pool.ExecConfig   `doc:"PHP processes: exec mode ('pool.ExecConfig')"`

	// What the configuration found, for the log once it is up.
	FileLimit int      // RLIMIT_NOFILE, 0 when unknown
	Notices   []string // limits fitted to this machine, and the like: INFO lines
	Warnings  []string // unknown keys, and values that may not work: WARN lines
	// UnknownKeys describe the keys of the properties file that are not
	// configuration keys (with the key each was probably meant to be). The
	// server only warns about them; `call` refuses to run.
	UnknownKeys []string
}

// configKeys are the keys of Config, read from its tags once.
var configKeys = mustKeys(&Config{})

// Mode is how PHP runs (SPEC §2).
type Mode string

// The modes.
const (
	ModeWorker Mode = "worker" // warm worker.php processes
	ModeExec   Mode = "exec"   // a process per call
)

// Capacity is how many tasks run at once: PHP processes times the jobs
// each runs at once.
func (c *Config) Capacity() int { return c.Worker.Workers * max(c.Worker.Concurrency, 1) }

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
	return loadConfig(a, getenv, fileLimit())
}

// loadConfig is LoadConfig on a machine whose RLIMIT_NOFILE is nofile (0: unknown).
func loadConfig(a Args, getenv func(string) string, nofile int) (*Config, error) {
	v := viper.New()
	configKeys.defaults(v)
	var unknown []string
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
			if !configKeys.known(key) {
				unknown = append(unknown, unknownKey(k, "in "+file))
				continue
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
		if !configKeys.known(k) {
			return nil, &ConfigError{k, "unknown key given with -D" + didYouMean(k)}
		}
		v.Set(k, a.Overrides[k])
	}
	sort.Strings(unknown)
	c := &Config{}
	if err := configKeys.decode(v, c); err != nil {
		return nil, err
	}
	r := &resolver{files: a.checksFiles()}
	if r.resolve(c, nofile); r.err != nil {
		return nil, r.err
	}
	for _, u := range unknown {
		c.Warnings = append(c.Warnings, u+" (ignored)")
	}
	c.Warnings = append(c.Warnings, r.warnings...)
	c.Notices = r.notices
	c.UnknownKeys = unknown
	c.FileLimit = nofile
	return c, nil
}

// resolver applies the rules between keys once every key is decoded, and
// checks what a value alone cannot say (a program exists, two ports differ).
type resolver struct {
	files    bool     // check that programs and scripts exist
	err      error    // the first key found wrong
	warnings []string // problems worth a log line, not a refusal to start
	notices  []string // what was fitted to this machine, at INFO
}

func (r *resolver) fail(key, format string, args ...any) {
	if r.err == nil {
		r.err = &ConfigError{key, fmt.Sprintf(format, args...)}
	}
}

// defaultMaxJobs is aggregator.pool.max-jobs per job a worker runs at once.
// Starting a PHP process costs ~21 ms of CPU (php -r ” with Debian's
// extensions): replaced every 1000 jobs, a worker spent ~25 µs per job on
// its own replacement, as much as a small job itself. Leaks are caught by
// aggregator.pool.max-memory; this only bounds what memory cannot see.
const defaultMaxJobs = 10000

// resolve is the cross-key rules, in the order they depend on each other.
func (r *resolver) resolve(c *Config, nofile int) {
	if c.OpsPort > 0 && c.OpsPort == c.Port {
		r.fail("aggregator.ops.port", "must differ from server.port (%d)", c.Port)
	}
	if net.ParseIP(c.OpsAddress) == nil && c.OpsAddress != "localhost" {
		r.fail("aggregator.ops.address", "not an IP address: %q", c.OpsAddress)
	}
	if net.ParseIP(c.Address) == nil && c.Address != "localhost" && c.Address != "" {
		r.fail("server.address", "not an IP address: %q", c.Address)
	}
	c.LogLevel = strings.ToUpper(c.LogLevel)
	switch c.LogLevel {
	case "DEBUG", "INFO", "WARN", "ERROR":
	default:
		r.fail("logging.level.me.blzr.aggregator", "want DEBUG, INFO, WARN or ERROR, got %q", c.LogLevel)
	}
	if len(c.Server.RequestFields) == 0 {
		r.fail("aggregator.fields.request", "must name at least one field")
	}
	for _, f := range []struct{ key, value string }{{"aggregator.fields.items", c.Server.ItemsField},
		{"aggregator.fields.suppliers", c.Server.SuppliersField}, {"aggregator.fields.info", c.Server.InfoField}} {
		if f.value == "" {
			r.fail(f.key, "must not be empty")
		}
	}
	r.mode(c)
	if c.Worker.MaxJobs == autoValue {
		// A worker is replaced after as many jobs as it could run in
		// 10,000 rounds: a worker running 256 jobs at once would otherwise
		// be replaced every few seconds, its replacement overlapping it.
		c.Worker.MaxJobs = defaultMaxJobs * int64(max(c.Worker.Concurrency, 1))
	}
	c.Server.Capacity, c.Server.Mode = c.Capacity(), string(c.Mode)
	if c.Server.SessionLimit == 0 {
		// A quarter of the capacity keeps one huge search from starving
		// the rest; at least 4 so that no SPEC §6 scenario (at most 4 tasks
		// of one session at once, one of them sleeping) changes its outcome.
		c.Server.SessionLimit = min(c.Capacity(), max(4, c.Capacity()/4))
	}
	switch out := c.Worker.OutputLimit; {
	case c.Server.SendQueueBytes == 0:
		// Room for one item of the largest answer, and as much again for
		// the messages around it: a browser that reads is never cut off.
		c.Server.SendQueueBytes = 2 * out
	case c.Server.SendQueueBytes < out:
		r.fail("aggregator.limit.send-queue-bytes", "must be 0 (twice aggregator.limit.output-size) or at least aggregator.limit.output-size (%d), got %d",
			out, c.Server.SendQueueBytes)
	}
	set := c.MaxConnections != 0
	r.connections(c, nofile, set)
	r.sessions(c, nofile, set)
}

// mode checks the keys of the mode PHP runs in: its programs and scripts
// exist (unless files is off: commands that only talk to a running server).
func (r *resolver) mode(c *Config) {
	c.Mode = Mode(strings.ToLower(string(c.Mode)))
	switch c.Mode {
	case ModeExec:
		r.command("aggregator.script.suppliers", c.Exec.Suppliers)
		r.command("aggregator.script.items", c.Exec.Items)
		c.Exec.Prepend = r.prepend("aggregator.script.prepend", c.Exec.Prepend)
		c.Worker.Concurrency = 1 // a process per job
	case ModeWorker:
		r.command("aggregator.worker.command", c.Worker.Command)
		if _, err := os.Stat(c.Worker.Handlers); err != nil && r.files {
			r.fail("aggregator.worker.handlers", "missing handlers file %q", c.Worker.Handlers)
		}
	default:
		r.fail("aggregator.pool.mode", "unknown mode %q: want worker or exec", c.Mode)
	}
}

// command checks that a command's program can be found and that every
// *.php file it names exists.
func (r *resolver) command(key string, words []string) {
	if !r.files || len(words) == 0 {
		return
	}
	if _, err := exec.LookPath(words[0]); err != nil {
		r.fail(key, "program %q not found: %v", words[0], errors.Unwrap(err))
		return
	}
	for _, w := range words[1:] {
		if strings.HasSuffix(w, ".php") {
			if _, err := os.Stat(w); err != nil {
				r.fail(key, "missing script %q", w)
			}
		}
	}
}

// prepend is the exec scripts' auto_prepend_file p as an absolute path
// (the scripts may run in another directory), or "" when it is off or
// missing. A missing file only costs the backtraces: a warning when it
// was configured, nothing for the default (a directory without src/).
func (r *resolver) prepend(key, p string) string {
	if p == "" || !r.files {
		return ""
	}
	abs, err := filepath.Abs(p)
	if err == nil {
		_, err = os.Stat(abs)
	}
	if err != nil {
		if p != configKeys.spec(key).Default {
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
func fdHeadroom(c *Config) int { return 128 + 4*c.Worker.Workers + c.Capacity() }

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
// a cap the operator set that looks too big is only warned about.
func (r *resolver) connections(c *Config, nofile int, set bool) {
	const key = "aggregator.limit.connections"
	room := nofile - fdHeadroom(c)
	switch {
	case !set && nofile == 0:
		c.MaxConnections = 10000
	case !set:
		c.MaxConnections = max(room, nofile/4, 1)
	case nofile > 0 && c.MaxConnections > room:
		r.warnings = append(r.warnings, fmt.Sprintf("%s=%d leaves less than %d of RLIMIT_NOFILE=%d for PHP's pipes and the log files: "+
			"running out is answered with 503, but raise LimitNOFILE or lower the key", key, c.MaxConnections, fdHeadroom(c), nofile))
	}
}

// defaultSessions is aggregator.limit.sessions when the machine allows it.
const defaultSessions = 20000

// sessions sets aggregator.limit.sessions' default, 0: defaultSessions, or
// one per connection the main port serves when that is fewer (a session
// holds one), which the log says at INFO: on a machine whose RLIMIT_NOFILE
// is small the default fits it instead of warning about itself. A WARN is
// left for what the operator set and can change: more sessions than
// connections.
func (r *resolver) sessions(c *Config, nofile int, connectionsSet bool) {
	const key = "aggregator.limit.sessions"
	// Why the connections are as many as they are, and what gives more.
	why, raise := "as configured", "raise aggregator.limit.connections"
	switch {
	case !connectionsSet && nofile > 0:
		why = fmt.Sprintf("what RLIMIT_NOFILE=%d leaves after PHP's pipes and the log files", nofile)
		raise = "raise LimitNOFILE (ulimit -n)"
	case !connectionsSet:
		why, raise = "its default while RLIMIT_NOFILE is unknown", "set aggregator.limit.connections"
	}
	connections := fmt.Sprintf("aggregator.limit.connections=%d", c.MaxConnections)
	switch {
	case c.Server.MaxSessions == 0 && c.MaxConnections >= defaultSessions:
		c.Server.MaxSessions = defaultSessions
	case c.Server.MaxSessions == 0:
		c.Server.MaxSessions = c.MaxConnections
		r.notices = append(r.notices, fmt.Sprintf("%s=%d, one per connection: %s is %s; %s for up to %d",
			key, c.Server.MaxSessions, connections, why, raise, defaultSessions))
	case c.MaxConnections < c.Server.MaxSessions:
		r.warnings = append(r.warnings, fmt.Sprintf("%s=%d is more than the connections served at once (%s is %s): "+
			"past them a browser gets 503 at connect; %s or lower %s", key, c.Server.MaxSessions, connections, why, raise, key))
	}
}

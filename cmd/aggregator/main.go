// Command aggregator serves the websocket search aggregator: it asks PHP
// which suppliers to query, runs one PHP translator per supplier in
// parallel, and streams each item to the browser as it arrives.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/theaspect/aggregator"
	"github.com/theaspect/aggregator/fetch"
	"github.com/theaspect/aggregator/frontend"
	"github.com/theaspect/aggregator/internal/gcfloor"
	"github.com/theaspect/aggregator/pool"
	"github.com/theaspect/aggregator/server"
	"go.uber.org/zap"
)

// shutdownWait bounds how long a stop waits for sessions to send their close frames.
const shutdownWait = 5 * time.Second

// Timeouts of plain HTTP requests (websockets set their own).
const (
	// readHeaderTimeout: a client has this long to send its request's head.
	readHeaderTimeout = 10 * time.Second
	// readTimeout: ... and its whole request; ours are GETs without a body.
	readTimeout = 30 * time.Second
	// writeTimeout: the longest answer (/metrics, the page) is written well
	// within it; a client that reads slower is dropped.
	writeTimeout = 60 * time.Second
)

const usage = `usage: aggregator [-c application.properties] [-Dkey=value ...] [COMMAND ...]

With no command, serves the aggregator (see README.md and docs/). Configuration comes
from application.properties in the working directory (or the file given with
-c), then the PORT environment variable, then -Dkey=value overrides.
Signals: SIGTERM/SIGINT stop, SIGHUP reloads the PHP workers, SIGUSR2 drains
(new sessions refused with 503, running ones go on; for a deploy), SIGUSR1
takes sessions again.

Commands:
  call suppliers|items JSON   run one job through the configured mode and
                              handlers, print what the browser would get
  workers                     list the running server's PHP processes
`

// commands are the sub-commands; each gets the configuration and its words
// and returns the exit code.
var commands = map[string]func(c *Config, args []string, stdout, stderr io.Writer) int{}

// Main wires the program: config, logs, the PHP runner and the HTTP server.
// Tests start the same Main as the binary does.
type Main struct {
	Config *Config
	Log    *zap.Logger
	Runner phpRunner
	Server *server.Server
	Addr   net.Addr
	// OpsAddr is the operators' listener's address; nil when it is off.
	OpsAddr net.Addr
	// Instance is this run's random id, at the end of every log line.
	Instance string
	// Command is a sub-command and its words; empty to serve.
	Command []string

	http      *http.Server
	opsHTTP   *http.Server // the operators' listener, when aggregator.ops.port is set
	closeLog  func()
	stopWatch func()
	stopGC    func()
}

// ParseFlags reads the command line and the configuration.
func (m *Main) ParseFlags(args []string, getenv func(string) string) error {
	a, err := ParseArgs(args)
	if err != nil {
		return err
	}
	if len(a.Rest) > 0 {
		if _, ok := commands[a.Rest[0]]; !ok {
			return fmt.Errorf("unknown command %q\n%s", a.Rest[0], usage)
		}
		m.Command = a.Rest
	}
	m.Config, err = LoadConfig(a, getenv)
	return err
}

// Run starts logging, the PHP runner and the listener, and returns once
// the server accepts connections.
func (m *Main) Run() error {
	c := m.Config
	m.Instance = newInstanceID()
	log, logHealth, closeLog, err := newLogger(c, m.Instance)
	if err != nil {
		return err
	}
	m.Log, m.closeLog = log, closeLog
	m.stopGC = gcfloor.Start(c.HeapFloor)
	for _, n := range c.Notices {
		log.Info(n)
	}
	for _, w := range c.Warnings {
		log.Warn(w)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.Runner = newRunner(c, log, reg)
	if reloader, ok := m.Runner.(aggregator.Reloader); c.Watch && ok {
		if m.stopWatch, err = startWatch(context.Background(), c, reloader, log); err != nil {
			log.Error("watch mode is off: cannot watch the PHP files", zap.Error(err))
		}
	} else if c.Watch {
		log.Info("watch mode does nothing in exec mode: every job runs the code on disk")
	}
	sc := c.Server // the keys; the rest is this run's
	sc.Static, sc.HealthChecks = frontend.FS(), []func() aggregator.Health{logHealth}
	m.Server = server.New(sc, m.Runner, log, reg)

	// No TCP keepalive (nginx's default too): a session lasts at most
	// aggregator.timeout.session and a websocket is pinged, so the kernel's
	// probes would find nothing; turning them on cost 4 setsockopt(2) per
	// connection, ~10% of the system calls of a search.
	lc := net.ListenConfig{KeepAlive: -1}
	ln, err := lc.Listen(context.Background(), "tcp", net.JoinHostPort(c.Address, strconv.Itoa(c.Port)))
	if err != nil {
		m.Runner.Close()
		return fmt.Errorf("listen: %w", err)
	}
	m.Addr = ln.Addr()
	m.http = &http.Server{
		Handler: m.Server.Handler(),
		// A websocket's deadlines are cleared at the upgrade and then set
		// by its session, so these bound only plain HTTP: the request
		// (GETs, no bodies), the answer, and a keep-alive connection idle
		// between requests.
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       c.IdleTimeout,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
	go func() {
		if err := m.http.Serve(m.Server.Listen(ln, "main", c.MaxConnections, "aggregator.limit.connections")); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server stopped", zap.Error(err))
		}
	}()
	if c.OpsPort >= 0 {
		if err := m.serveOps(); err != nil {
			m.http.Close()
			m.Runner.Close()
			return err
		}
	}
	log.Info("aggregator listening", zap.String("addr", m.Addr.String()), zap.Int("pid", os.Getpid()),
		zap.String("version", buildVersion()), zap.String("mode", string(c.Mode)),
		zap.Int("executors", c.Worker.Workers), zap.Int("concurrency", c.Worker.Concurrency), zap.Duration("script_timeout", c.Server.ScriptTimeout),
		zap.Duration("session_timeout", c.Server.SessionTimeout), zap.Int("max_connections", c.MaxConnections), zap.Int("max_sessions", c.Server.MaxSessions),
		zap.Uint64("gc_heap_floor_mb", c.HeapFloor>>20))
	return nil
}

// opsConnections caps the operators' listener: a scrape and a few
// operators, kept apart from the public cap so that they get in when the
// main port is full.
const opsConnections = 64

// serveOps starts the operators' listener (aggregator.ops.address and
// .port): /metrics, /workers, /health, /stats and, when enabled,
// /debug/pprof/, for whoever can reach that address.
func (m *Main) serveOps() error {
	c := m.Config
	ln, err := net.Listen("tcp", net.JoinHostPort(c.OpsAddress, strconv.Itoa(c.OpsPort)))
	if err != nil {
		return fmt.Errorf("listen on aggregator.ops.address:aggregator.ops.port: %w", err)
	}
	m.OpsAddr = ln.Addr()
	m.opsHTTP = &http.Server{
		Handler:           m.Server.OpsHandler(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       c.IdleTimeout,
		ErrorLog:          zap.NewStdLog(m.Log.Named("ops")),
		// No WriteTimeout: a CPU profile or trace writes for as long as asked.
	}
	go func() {
		if err := m.opsHTTP.Serve(m.Server.Listen(ln, "ops", opsConnections, "the operators' listener's cap")); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Log.Error("ops http server stopped", zap.Error(err))
		}
	}()
	m.Log.Info("ops listening", zap.String("addr", m.OpsAddr.String()), zap.Bool("pprof", c.Server.Pprof))
	return nil
}

// phpRunner is the PHP runner as main holds it: what the server needs (Run,
// Health, Info) and Close at the end. Worker mode's is also an
// aggregator.Reloader, for SIGHUP and watch mode.
type phpRunner interface {
	server.PHP
	io.Closer
}

// newRunner builds the PHP runner of the configured mode; reg (nil: none)
// gets its metrics.
func newRunner(c *Config, log *zap.Logger, reg prometheus.Registerer) phpRunner {
	var metrics *pool.Metrics
	if reg != nil {
		metrics = pool.NewMetrics(reg)
	}
	// The configs hold the keys; the rest is this run's.
	if c.Mode == ModeExec {
		ec := c.Exec
		ec.Env, ec.Log, ec.Metrics = os.Environ(), log, metrics
		return pool.NewExec(ec)
	}
	wc := c.Worker
	wc.Env, wc.Log, wc.Metrics = os.Environ(), log, metrics
	wc.Fetcher = fetch.New(fetch.Config{MaxBody: wc.OutputLimit, MaxConnsPerHost: c.FetchConnsPerHost, Registerer: reg})
	return pool.NewSupervisor(wc)
}

// Close stops accepting, closes every session with 1001, kills every PHP
// process and flushes the log.
func (m *Main) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownWait)
	defer cancel()
	if m.http != nil {
		go m.http.Shutdown(ctx) // stops accepting; hijacked sockets are the sessions'
	}
	if m.opsHTTP != nil {
		go m.opsHTTP.Shutdown(ctx)
	}
	if m.Server != nil {
		m.Server.Shutdown(ctx)
	}
	if m.stopWatch != nil {
		m.stopWatch()
	}
	if m.Runner != nil {
		m.Runner.Close()
	}
	if m.Log != nil {
		m.Log.Info("aggregator stopped")
	}
	if m.closeLog != nil {
		m.closeLog()
	}
	if m.stopGC != nil {
		m.stopGC()
	}
	return nil
}

func main() {
	args := os.Args[1:]
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Print(usage)
		return
	}
	m := &Main{}
	if err := m.ParseFlags(args, os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "aggregator:", err)
		os.Exit(2)
	}
	if len(m.Command) > 0 {
		os.Exit(commands[m.Command[0]](m.Config, m.Command[1:], os.Stdout, os.Stderr))
	}
	if err := m.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "aggregator:", err)
		m.Close()
		os.Exit(1)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR2, syscall.SIGUSR1)
	for sig := range sigs {
		switch sig {
		case syscall.SIGHUP:
			m.Log.Info("SIGHUP: reloading PHP")
			if r, ok := m.Runner.(aggregator.Reloader); ok { // exec mode runs the code on disk for every call
				r.Reload()
			}
			continue
		case syscall.SIGUSR2: // a deploy's drain (server/drain.go); a stop stays SIGTERM
			m.Server.Drain()
			continue
		case syscall.SIGUSR1:
			m.Server.Resume()
			continue
		}
		m.Log.Info("stopping", zap.String("signal", sig.String()))
		break
	}
	m.Close()
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/theaspect/aggregator/pool"
	"github.com/theaspect/aggregator/server"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func init() { commands["call"] = runCall }

const callUsage = `usage: aggregator [-c FILE] [-Dkey=value ...] call [--json] suppliers|items JSON

Runs one job through the configured mode (aggregator.pool.mode) and PHP code,
with the job's time aggregator.timeout.script, and prints the raw output, what
the browser would get (the suppliers or items, or the SPEC error code), the
duration and what PHP wrote to stderr. The log goes to stderr.

  suppliers JSON  JSON is the browser's request, e.g.
                  '{"code":"normal","brand":"ctr","apikey":"1","analog":1}'
  items JSON      JSON is one supplier element, e.g. '{"class":"normal-1","code":"3310"}'
  JSON            "-" reads it from stdin
  --json          print one JSON object instead:
                  {"output","code","error","items","suppliers","duration_ms","stderr",...}

Exit code: 0 when the browser would get the result, 1 when it would get an
error code, 2 on bad usage.
`

// callReport is what one call printed; --json prints it as is.
type callReport struct {
	Kind       string            `json:"kind"`
	Mode       string            `json:"mode"`
	Command    string            `json:"command"`
	Input      json.RawMessage   `json:"input,omitempty"`
	Output     string            `json:"output"`
	Code       string            `json:"code"`            // "" when the browser gets the result
	Error      string            `json:"error,omitempty"` // why, in the words of the server's log
	Info       json.RawMessage   `json:"info,omitempty"`  // the supplier's info field (items), echoed as _info
	Items      []json.RawMessage `json:"items"`
	Suppliers  []json.RawMessage `json:"suppliers"`
	DurationMS float64           `json:"duration_ms"`
	PID        int               `json:"pid,omitempty"`
	Stderr     []string          `json:"stderr"`
	Exception  *phpException     `json:"exception,omitempty"`
}

// phpException is a handler's exception as a worker reports it.
type phpException struct {
	Class   string `json:"class"`
	Message string `json:"message"`
	File    string `json:"file"`
	Line    int64  `json:"line"`
	Trace   string `json:"trace"`
}

// runCall is `aggregator call`.
func runCall(c *Config, args []string, stdout, stderr io.Writer) int {
	asJSON := false
	var words []string
	for _, a := range args {
		switch a {
		case "--json", "-json":
			asJSON = true
		case "-h", "--help", "-help":
			fmt.Fprint(stdout, callUsage)
			return 0
		default:
			words = append(words, a)
		}
	}
	if len(words) != 2 || (words[0] != "suppliers" && words[0] != "items") {
		fmt.Fprint(stderr, "aggregator call: want suppliers|items and one JSON argument\n\n", callUsage)
		return 2
	}
	arg := []byte(words[1])
	if words[1] == "-" {
		var err error
		if arg, err = io.ReadAll(os.Stdin); err != nil {
			fmt.Fprintln(stderr, "aggregator call: reading stdin:", err)
			return 2
		}
	}

	rep := &callReport{Kind: words[0], Mode: c.Mode, Items: []json.RawMessage{}, Suppliers: []json.RawMessage{}, Stderr: []string{}}
	if c.Mode == "exec" {
		cmd := c.ScriptItems
		if rep.Kind == "suppliers" {
			cmd = c.ScriptSuppliers
		}
		rep.Command = strings.Join(cmd, " ")
	} else {
		rep.Command = strings.Join(append(append([]string{}, c.WorkerCommand...), c.WorkerHandlers), " ")
	}

	job := &pool.Job{Session: "call", Task: 1}
	if rep.Kind == "suppliers" {
		job.Kind = pool.Suppliers
		input, code, err := server.SuppliersInput(arg, c.RequestFields)
		if err != nil {
			// The browser's request never reaches PHP.
			rep.Code, rep.Error = string(code), err.Error()
			return rep.print(stdout, asJSON)
		}
		job.Input = input
	} else {
		job.Kind = pool.Items
		input, class, info, err := server.ItemsInput(arg, c.InfoField)
		if err != nil {
			fmt.Fprintln(stderr, "aggregator call items:", err)
			return 2
		}
		job.Input, job.Class, rep.Info = input, class, info
	}
	rep.Input = job.Input

	rec := &recorder{}
	log := callLogger(c, stderr, rec)
	for _, w := range c.Warnings {
		log.Warn(w)
	}
	one := *c
	one.Executors = 1
	runner := newRunner(&one, log, nil)
	if c.Mode != "exec" {
		waitReady(runner, c.StartTimeout)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.ScriptTimeout)
	res, err := runner.Run(ctx, job)
	cancel()
	runner.Close() // every PHP line has been logged once its process is gone
	_ = log.Sync()

	rep.Output = string(res.Output)
	rep.DurationMS = float64(res.Duration.Microseconds()) / 1000
	rep.PID = res.PID
	rep.Stderr, rep.Exception = rec.result()
	if err != nil && rep.Exception != nil {
		rep.Output = "" // that was the worker's ERROR frame, not the handler's answer
	}
	if err != nil && rep.Exception == nil && c.Mode == "exec" {
		rep.Exception = execException(rep.Stderr)
	}
	if err != nil {
		rep.Code, rep.Error = string(server.ErrorCode(err)), err.Error()
		return rep.print(stdout, asJSON)
	}
	items, suppliers, code, err := server.CheckOutput(job.Kind, res.Output, c.ItemsField, c.SuppliersField)
	if err != nil {
		rep.Code, rep.Error = string(code), err.Error()
		return rep.print(stdout, asJSON)
	}
	if items != nil {
		rep.Items = items
	}
	if suppliers != nil {
		rep.Suppliers = suppliers
	}
	return rep.print(stdout, asJSON)
}

// execThrown is the first line script/lib/exec.php writes for an uncaught
// exception: "Class: message in /file.php:12", its trace follows.
var execThrown = regexp.MustCompile(`^([A-Za-z_\\][A-Za-z0-9_\\]*): (.*) in (\S+):(\d+)$`)

// execException finds an exception in an exec script's stderr.
func execException(lines []string) *phpException {
	for i, l := range lines {
		m := execThrown.FindStringSubmatch(l)
		if m == nil || i+1 >= len(lines) || !strings.HasPrefix(lines[i+1], "#0 ") {
			continue
		}
		e := &phpException{Class: m[1], Message: m[2], File: m[3]}
		e.Line, _ = strconv.ParseInt(m[4], 10, 64)
		var trace []string
		for _, t := range lines[i+1:] {
			if !strings.HasPrefix(t, "#") {
				break
			}
			trace = append(trace, t)
		}
		e.Trace = strings.Join(trace, "\n")
		return e
	}
	return nil
}

// waitReady waits until a worker has started (or failed to), so that the
// job's time does not include PHP's start-up.
func waitReady(r pool.Runner, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		err := r.Health()
		if err == nil || errors.Is(err, pool.ErrStart) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// print writes the report and returns the exit code.
func (r *callReport) print(w io.Writer, asJSON bool) int {
	exit := 0
	if r.Code != "" {
		exit = 1
	}
	if asJSON {
		b, err := json.Marshal(r)
		if err != nil {
			fmt.Fprintln(w, `{"code":"E_UNKNOWN"}`)
			return 1
		}
		fmt.Fprintf(w, "%s\n", b)
		return exit
	}
	line := func(label, format string, args ...any) {
		fmt.Fprintf(w, "%-10s %s\n", label+":", fmt.Sprintf(format, args...))
	}
	line("job", "%s, %s mode: %s", r.Kind, r.Mode, r.Command)
	if r.Input != nil {
		line("input", "%s", r.Input)
	}
	if r.Code == string(server.ErrRequestJSON) || r.Code == string(server.ErrIllegalRequest) {
		line("error", "%s", r.Code)
		line("reason", "%s (PHP was not called)", r.Error)
		return exit
	}
	if r.Output == "" {
		line("output", "(none)")
	} else {
		line("output", "%s", strings.TrimRight(r.Output, "\n"))
	}
	if r.Code != "" {
		line("error", "%s", r.Code)
		line("reason", "%s", r.Error)
		if e := r.Exception; e != nil {
			line("exception", "%s: %s", e.Class, e.Message)
			fmt.Fprintf(w, "%-10s at %s:%d\n", "", e.File, e.Line)
			for _, t := range strings.Split(strings.TrimSpace(e.Trace), "\n") {
				if t != "" {
					fmt.Fprintf(w, "%-10s %s\n", "", t)
				}
			}
		}
	} else if r.Kind == "suppliers" {
		line("result", "%s", plural(len(r.Suppliers), "supplier"))
		for i, s := range r.Suppliers {
			fmt.Fprintf(w, "  [%d] %s\n", i+1, s)
		}
	} else {
		line("result", "%s, %s", plural(len(r.Items), "item"), plural(len(r.Suppliers), "nested supplier"))
		if r.Info != nil {
			fmt.Fprintf(w, "  _info %s\n", r.Info)
		}
		for i, it := range r.Items {
			fmt.Fprintf(w, "  item [%d] %s\n", i+1, it)
		}
		for i, s := range r.Suppliers {
			fmt.Fprintf(w, "  supplier [%d] %s\n", i+1, s)
		}
	}
	if r.PID != 0 {
		line("duration", "%.1f ms (pid %d)", r.DurationMS, r.PID)
	} else {
		line("duration", "%.1f ms", r.DurationMS)
	}
	if len(r.Stderr) == 0 {
		line("stderr", "(none)")
	} else {
		line("stderr", "%s", plural(len(r.Stderr), "line"))
		for _, l := range r.Stderr {
			fmt.Fprintf(w, "  | %s\n", l)
		}
	}
	return exit
}

// plural is "1 item", "2 items".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// callLogger logs to stderr (console encoding, no time stamps) and records
// what PHP wrote and a handler's exception for the report.
func callLogger(c *Config, stderr io.Writer, rec *recorder) *zap.Logger {
	var level zapcore.Level
	if level.UnmarshalText([]byte(c.LogLevel)) != nil {
		level = zapcore.InfoLevel
	}
	enc := zap.NewDevelopmentEncoderConfig()
	enc.TimeKey = ""
	console := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.Lock(zapcore.AddSync(stderr)), level)
	return zap.New(zapcore.NewTee(console, &recordCore{rec: rec}))
}

// recorder keeps PHP's output lines and a handler's exception.
type recorder struct {
	mu        sync.Mutex
	lines     []string
	exception *phpException
}

func (r *recorder) result() ([]string, *phpException) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string{}, r.lines...), r.exception
}

func (r *recorder) add(msg string, f map[string]any) {
	str := func(k string) string { s, _ := f[k].(string); return s }
	r.mu.Lock()
	defer r.mu.Unlock()
	switch msg {
	case "php stderr":
		r.lines = append(r.lines, str("line"))
	case "php stdout":
		r.lines = append(r.lines, "stdout: "+str("line"))
	case "handler failed":
		line, _ := f["line"].(int64)
		r.exception = &phpException{Class: str("exception"), Message: str("error"), File: str("file"),
			Line: line, Trace: str("trace")}
	}
}

// recordCore is a zap core that hands every entry's message and fields to a recorder.
type recordCore struct {
	rec    *recorder
	fields []zapcore.Field
}

func (c *recordCore) Enabled(zapcore.Level) bool { return true }

func (c *recordCore) With(fields []zapcore.Field) zapcore.Core {
	return &recordCore{rec: c.rec, fields: append(append([]zapcore.Field{}, c.fields...), fields...)}
}

func (c *recordCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	return ce.AddCore(e, c)
}

func (c *recordCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fields {
		f.AddTo(enc)
	}
	c.rec.add(e.Message, enc.Fields)
	return nil
}

func (c *recordCore) Sync() error { return nil }

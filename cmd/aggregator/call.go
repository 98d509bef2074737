package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/theaspect/aggregator"
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
error code, 2 on bad usage or an unknown configuration key (-D or file).
`

// callReport is what one call printed; --json prints it as is.
type callReport struct {
	Kind       string                `json:"kind"`
	Mode       string                `json:"mode"`
	Command    string                `json:"command"`
	Input      json.RawMessage       `json:"input,omitempty"`
	Output     string                `json:"output"`
	Code       string                `json:"code"`              // "" when the browser gets the result
	Error      string                `json:"error,omitempty"`   // why, in the words of the server's log
	Message    string                `json:"message,omitempty"` // the _message the browser gets (a PublicError's text)
	Info       json.RawMessage       `json:"info,omitempty"`    // the supplier's info field (items), echoed as _info
	Items      []json.RawMessage     `json:"items"`
	Suppliers  []json.RawMessage     `json:"suppliers"`
	DurationMS float64               `json:"duration_ms"`
	PID        int                   `json:"pid,omitempty"`
	Stderr     []string              `json:"stderr"`
	Exception  *aggregator.Exception `json:"exception,omitempty"`
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
	if len(c.UnknownKeys) > 0 {
		// The server starts with them (the file outlives releases); a
		// developer trying a handler wants to know at once that part of the
		// configuration is not what they think.
		for _, u := range c.UnknownKeys {
			fmt.Fprintln(stderr, "aggregator call:", u)
		}
		fmt.Fprintln(stderr, "aggregator call: fix or remove the key: call runs only with a configuration it understands")
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

	rep := &callReport{Kind: words[0], Mode: string(c.Mode), Items: []json.RawMessage{}, Suppliers: []json.RawMessage{}, Stderr: []string{}}
	if c.Mode == ModeExec {
		cmd := c.Exec.Items
		if rep.Kind == "suppliers" {
			cmd = c.Exec.Suppliers
		}
		rep.Command = strings.Join(cmd, " ")
	} else {
		rep.Command = strings.Join(append(append([]string{}, c.Worker.Command...), c.Worker.Handlers), " ")
	}

	job := &aggregator.Job{Session: "call", Task: 1}
	if rep.Kind == "suppliers" {
		job.Kind = aggregator.Suppliers
		input, code, err := server.SuppliersInput(arg, c.Server.RequestFields)
		if err != nil {
			// The browser's request never reaches PHP.
			rep.Code, rep.Error = string(code), err.Error()
			return rep.print(stdout, asJSON)
		}
		job.Input = input
	} else {
		job.Kind = aggregator.Items
		input, class, info, err := server.ItemsInput(arg, c.Server.InfoField)
		if err != nil {
			fmt.Fprintln(stderr, "aggregator call items:", err)
			return 2
		}
		job.Input, job.Class, rep.Info = input, class, info
	}
	rep.Input = job.Input

	log := callLogger(c, stderr)
	for _, w := range c.Warnings {
		log.Warn(w)
	}
	one := *c
	one.Worker.Workers, one.Worker.Concurrency, one.Exec.Processes = 1, 1, 1
	runner := newRunner(&one, log, nil)
	if c.Mode != ModeExec {
		waitReady(runner, c.Worker.StartTimeout)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.Server.ScriptTimeout)
	res, err := runner.Run(ctx, job)
	cancel()
	runner.Close()
	_ = log.Sync()

	rep.Output = string(res.Output)
	rep.DurationMS = float64(res.Duration.Microseconds()) / 1000
	rep.PID = res.PID
	rep.Stderr = append(rep.Stderr, res.Stderr...)
	rep.Exception = res.Exception
	if err != nil {
		rep.Code, rep.Error, rep.Message = string(aggregator.ErrorCode(err)), aggregator.ErrorMessage(err), aggregator.PublicMessage(err)
		return rep.print(stdout, asJSON)
	}
	items, suppliers, code, err := server.CheckOutput(job.Kind, res.Output, c.Server.ItemsField, c.Server.SuppliersField)
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

// waitReady waits until a worker has started (or failed to), so that the
// job's time does not include PHP's start-up.
func waitReady(r aggregator.Monitor, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		h := r.Health()
		if h.Status != aggregator.HealthDown || h.Reason != "no PHP worker is running yet" {
			return // up, or it cannot start: the job says which
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
	if r.Code == string(aggregator.ERequestJSON) || r.Code == string(aggregator.EIllegalRequest) {
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
		if r.Message != "" {
			line("_message", "%s (the customer reads this)", r.Message)
		}
		if e := r.Exception; e != nil {
			line("exception", "%s: %s", e.Class, e.Message)
			if e.File != "" {
				fmt.Fprintf(w, "%-10s at %s:%d\n", "", e.File, e.Line)
			}
			if e.Hint != "" {
				fmt.Fprintf(w, "%-10s hint: %s\n", "", e.Hint)
			}
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

// callLogger logs to stderr (console encoding, no time stamps).
func callLogger(c *Config, stderr io.Writer) *zap.Logger {
	var level zapcore.Level
	if level.UnmarshalText([]byte(c.LogLevel)) != nil {
		level = zapcore.InfoLevel
	}
	enc := zap.NewDevelopmentEncoderConfig()
	enc.TimeKey = ""
	return zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.Lock(zapcore.AddSync(stderr)), level))
}

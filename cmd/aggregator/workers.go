package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/theaspect/aggregator"
)

func init() { commands["workers"] = runWorkers }

// runWorkers asks the running server (aggregator.ops.address:port when
// that listener is on, else server.address:server.port, or -url) for its
// PHP processes and prints them as a table. On the main port /workers
// answers local clients only, which this command is.
func runWorkers(c *Config, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("workers", flag.ContinueOnError)
	fs.SetOutput(stderr)
	host, port := c.Address, c.Port
	if c.OpsPort > 0 {
		host, port = c.OpsAddress, c.OpsPort
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	url := fs.String("url", "http://"+net.JoinHostPort(host, strconv.Itoa(port)), "the server's base URL")
	asJSON := fs.Bool("json", false, "print the server's JSON as it is")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(*url + "/workers")
	if err != nil {
		fmt.Fprintf(stderr, "aggregator workers: is the server running? %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "aggregator workers: %s: %s\n", resp.Status, body)
		return 1
	}
	if *asJSON {
		stdout.Write(body)
		return 0
	}
	var list struct {
		Mode    string                `json:"mode"`
		Workers []aggregator.ProcInfo `json:"workers"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		fmt.Fprintf(stderr, "aggregator workers: bad answer: %v\n", err)
		return 1
	}
	printWorkers(stdout, list.Mode, list.Workers, time.Now())
	return 0
}

// printWorkers writes one row per job in flight (a worker running several
// jobs has several rows) and one per idle process, busy ones first.
func printWorkers(w io.Writer, mode string, ws []aggregator.ProcInfo, now time.Time) {
	sort.Slice(ws, func(i, j int) bool {
		if (len(ws[i].Running) > 0) != (len(ws[j].Running) > 0) {
			return len(ws[i].Running) > 0
		}
		return ws[i].PID < ws[j].PID
	})
	busy, jobs := 0, 0
	for _, p := range ws {
		if len(p.Running) > 0 {
			busy++
			jobs += len(p.Running)
		}
	}
	fmt.Fprintf(w, "%s mode: %d PHP processes, %d busy, %d jobs in flight\n", mode, len(ws), busy, jobs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PID\tSTATE\tJOBS\tMEMORY\tUPTIME\tSESSION\tTASK\tSUPPLIER\tRUNNING\tWAITING FOR")
	for _, p := range ws {
		mem := "-"
		if p.Memory > 0 {
			mem = fmt.Sprintf("%.1fMB", float64(p.Memory)/(1<<20))
		}
		head := fmt.Sprintf("%d\t%s\t%d\t%s\t%s", p.PID, p.State, p.Jobs, mem, now.Sub(p.Started).Round(time.Second))
		if len(p.Running) == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\n", head)
			continue
		}
		sort.Slice(p.Running, func(i, j int) bool { return p.Running[i].Since.Before(p.Running[j].Since) })
		for _, j := range p.Running {
			class := j.Class
			if class == "" {
				class = "(" + j.Kind + ")"
			}
			waiting := "-"
			if len(j.Calls) > 0 {
				c := j.Calls[0]
				waiting = fmt.Sprintf("%s %s %.1fs", c.Method, c.Host, now.Sub(c.Since).Seconds())
				if len(j.Calls) > 1 {
					waiting += fmt.Sprintf(" +%d", len(j.Calls)-1)
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%.1fs\t%s\n", head, j.Session, j.Task, class, now.Sub(j.Since).Seconds(), waiting)
		}
	}
	tw.Flush()
}

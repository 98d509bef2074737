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

	"github.com/theaspect/aggregator/pool"
)

func init() { commands["workers"] = runWorkers }

// runWorkers asks the running server (server.address:server.port, or -url)
// for its PHP processes and prints them as a table.
func runWorkers(c *Config, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("workers", flag.ContinueOnError)
	fs.SetOutput(stderr)
	host := c.Address
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	url := fs.String("url", "http://"+net.JoinHostPort(host, strconv.Itoa(c.Port)), "the server's base URL")
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
		Mode    string          `json:"mode"`
		Workers []pool.ProcInfo `json:"workers"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		fmt.Fprintf(stderr, "aggregator workers: bad answer: %v\n", err)
		return 1
	}
	printWorkers(stdout, list.Mode, list.Workers, time.Now())
	return 0
}

// printWorkers writes one row per PHP process, busy ones first.
func printWorkers(w io.Writer, mode string, ws []pool.ProcInfo, now time.Time) {
	sort.Slice(ws, func(i, j int) bool {
		if (ws[i].State == "busy") != (ws[j].State == "busy") {
			return ws[i].State == "busy"
		}
		return ws[i].PID < ws[j].PID
	})
	busy := 0
	for _, p := range ws {
		if p.State == "busy" {
			busy++
		}
	}
	fmt.Fprintf(w, "%s mode: %d PHP processes, %d busy\n", mode, len(ws), busy)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PID\tSTATE\tJOBS\tMEMORY\tUPTIME\tSESSION\tTASK\tSUPPLIER\tRUNNING")
	for _, p := range ws {
		mem, session, task, class, running := "-", "-", "-", "-", "-"
		if p.Memory > 0 {
			mem = fmt.Sprintf("%.1fMB", float64(p.Memory)/(1<<20))
		}
		if p.Session != "" {
			session, task, class = p.Session, strconv.FormatInt(p.Task, 10), p.Class
			if class == "" {
				class = "(suppliers)"
			}
			running = fmt.Sprintf("%.1fs", now.Sub(p.Since).Seconds())
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", p.PID, p.State, p.Jobs, mem,
			now.Sub(p.Started).Round(time.Second), session, task, class, running)
	}
	tw.Flush()
}

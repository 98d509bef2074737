package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/theaspect/aggregator"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// failingWriter fails every write while err is set.
type failingWriter struct{ err error }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

// TestLogFileFailures: a log file that cannot be written costs one
// complaint per interval with the count of lines lost, never one per line,
// and /health is degraded until a write works again.
func TestLogFileFailures(t *testing.T) {
	now := time.Unix(0, 0)
	core, complaints := observer.New(zap.DebugLevel)
	w := &failingWriter{err: errors.New("no space left on device")}
	f := &fileSink{w: w, name: "x.log", now: func() time.Time { return now }, complain: zap.New(core)}
	if h := f.Health(); h.Status != aggregator.HealthOK {
		t.Fatalf("health before any write: %+v", h)
	}
	for i := 0; i < 1000; i++ {
		if n, err := f.Write([]byte("line\n")); err != nil || n != 5 {
			t.Fatalf("write returned %d, %v: zap would report it line by line", n, err)
		}
		now = now.Add(time.Millisecond) // 1 s in all: within one interval
	}
	if n := complaints.Len(); n != 1 {
		t.Fatalf("%d complaints for 1000 lost lines in 1 s, want 1", n)
	}
	h := f.Health()
	if h.Status != aggregator.HealthDegraded || !strings.Contains(h.Reason, "x.log") || !strings.Contains(h.Reason, "no space") {
		t.Errorf("health %+v, want degraded naming the file and the error", h)
	}
	now = now.Add(logComplainEvery)
	f.Write([]byte("line\n"))
	all := complaints.All()
	if len(all) != 2 || all[1].ContextMap()["lines_lost"] != int64(1000) {
		t.Fatalf("complaints %v, want a second one counting the 999 lines since the first and this one", all)
	}
	w.err = nil
	f.Write([]byte("line\n"))
	if h := f.Health(); h.Status != aggregator.HealthOK {
		t.Errorf("health after a write worked: %+v", h)
	}
	if all := complaints.All(); len(all) != 3 || all[2].Message != "log file writable again" {
		t.Errorf("no word that the file works again: %v", all)
	}
}

// TestLogBatches: lines below WARN wait for the next batch, a WARN line
// writes them and itself at once, and closing the log writes the rest.
func TestLogBatches(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a.log")
	c := &Config{LogLevel: "INFO", LogFile: file, LogMaxSize: 10, LogMaxFiles: 2}
	log, _, closeLog, err := newLogger(c, "test")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("first")
	log.Warn("second")
	b, _ := os.ReadFile(file) // no wait: the WARN line wrote the batch
	if !strings.Contains(string(b), "\tfirst\t") || !strings.Contains(string(b), "\tsecond\t") {
		t.Fatalf("after a WARN line the file holds %q, want the INFO line before it and the WARN line", b)
	}
	log.Info("third")
	closeLog()
	b, _ = os.ReadFile(file)
	if lines := strings.Split(strings.TrimSpace(string(b)), "\n"); len(lines) != 3 || !strings.Contains(lines[2], "\tthird\t") {
		t.Fatalf("after closing the file holds %q, want 3 lines ending with the last INFO one", b)
	}
}

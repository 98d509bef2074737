package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"github.com/theaspect/aggregator"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"gopkg.in/natefinch/lumberjack.v2"
)

// newLogger logs to the rotated file (and to stderr, for journald, unless
// turned off) at the configured level. Every line ends with the instance
// id: session ids restart at 1 with each run and the file is appended
// across runs (and several instances may log to one place), so a session's
// lines are found by session and instance together. health says whether
// the file can be written.
func newLogger(c *Config, instance string) (log *zap.Logger, health func() aggregator.Health, closeLog func(), err error) {
	var level zapcore.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return nil, nil, nil, err
	}
	if err := os.MkdirAll(filepath.Dir(c.LogFile), 0o755); err != nil {
		return nil, nil, nil, &ConfigError{"aggregator.log.file", err.Error()}
	}
	rot := &lumberjack.Logger{Filename: c.LogFile, MaxSize: c.LogMaxSize, MaxBackups: c.LogMaxFiles - 1}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	enc.EncodeLevel = zapcore.CapitalLevelEncoder
	tag := zap.String("instance", instance)
	stderr := zapcore.Lock(os.Stderr)
	file := &fileSink{w: rot, name: c.LogFile, now: time.Now,
		complain: zap.New(tagCore{Core: zapcore.NewCore(zapcore.NewConsoleEncoder(enc), stderr, zapcore.WarnLevel), tag: tag})}
	// One core writing to both: each line is encoded once, and a logger
	// With fields (one per session) clones one core, not two.
	var out zapcore.WriteSyncer = noSync{file}
	if c.LogConsole {
		out = zapcore.NewMultiWriteSyncer(out, noSync{stderr})
	}
	// Lines are written in batches: a write(2) per line, to the file and
	// to stderr, was 6 of a search's ~30 system calls when it logged 3
	// lines. A WARN or worse line writes the batch at once (tagCore), so a
	// problem is on disk before whatever comes next.
	buf := &zapcore.BufferedWriteSyncer{WS: out, Size: logBufferSize, FlushInterval: logFlushEvery}
	log = zap.New(tagCore{Core: zapcore.NewCore(zapcore.NewConsoleEncoder(enc), buf, level), tag: tag, batch: buf})
	return log, file.Health, func() { _ = buf.Stop(); file.Close(); _ = rot.Close() }, nil
}

// Log lines below WARN wait in memory at most logFlushEvery, or until
// logBufferSize bytes are waiting.
const (
	logFlushEvery = 100 * time.Millisecond
	logBufferSize = 256 << 10
)

// noSync is a WriteSyncer whose Sync does nothing: flushing the batch is
// what the log needs, not an fsync(2) of the file or of stderr (which
// fails on a pipe or a terminal) after every warning.
type noSync struct{ io.Writer }

func (noSync) Sync() error { return nil }

// logComplainEvery is how often a log file that cannot be written is
// complained about on stderr: once per interval, with the lines lost
// meanwhile, instead of zap's line per lost line (7.5 MB in 17 s).
const logComplainEvery = 10 * time.Second

// fileSink is the log file as zap writes to it. A failed write (disk full,
// permissions) is counted and never returned to zap; complain reports the
// failure on stderr at most once per logComplainEvery with the count of
// lines lost, and Health says degraded while writes fail.
type fileSink struct {
	w        io.Writer
	name     string
	now      func() time.Time
	complain *zap.Logger // stderr only

	mu        sync.Mutex
	failing   error     // the last write's error; nil when it worked
	lost      int64     // lines lost since the last complaint
	lostTotal int64     // lines lost since the start
	said      time.Time // when the last complaint was written
}

func (f *fileSink) Write(p []byte) (int, error) {
	_, err := f.w.Write(p)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		if f.failing != nil {
			f.complain.Warn("log file writable again", zap.String("file", f.name),
				zap.Int64("lines_lost", f.lost), zap.Int64("lines_lost_total", f.lostTotal))
			f.failing, f.lost = nil, 0
		}
		return len(p), nil
	}
	// A write carries a batch of lines (see logFlushEvery).
	n := int64(bytes.Count(p, []byte{'\n'}))
	f.failing = err
	f.lost += n
	f.lostTotal += n
	if now := f.now(); f.said.IsZero() || now.Sub(f.said) >= logComplainEvery {
		f.complain.Error("log file cannot be written", zap.String("file", f.name), zap.Error(err),
			zap.Int64("lines_lost", f.lost), zap.Int64("lines_lost_total", f.lostTotal),
			zap.Duration("next_report_after", logComplainEvery))
		f.lost, f.said = 0, now
	}
	return len(p), nil
}

// Health is degraded while the file cannot be written: the service runs,
// but its log is being lost.
func (f *fileSink) Health() aggregator.Health {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failing == nil {
		return aggregator.Health{Status: aggregator.HealthOK}
	}
	return aggregator.Health{Status: aggregator.HealthDegraded,
		Reason: fmt.Sprintf("log file %s cannot be written (%d lines lost): %v", f.name, f.lostTotal, f.failing)}
}

// Close reports the lines lost since the last complaint.
func (f *fileSink) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lost > 0 {
		f.complain.Error("log file cannot be written", zap.String("file", f.name), zap.Error(f.failing),
			zap.Int64("lines_lost", f.lost), zap.Int64("lines_lost_total", f.lostTotal))
		f.lost = 0
	}
}

// tagCore adds one field after every line's own: last, so that the lines
// read as before ("aggregator listening {"addr": ...") and tools that
// parse them keep working. With a batch, it writes the batch of lines out
// after a line of WARN or worse.
type tagCore struct {
	zapcore.Core
	tag   zapcore.Field
	batch *zapcore.BufferedWriteSyncer // nil: the core writes each line itself
}

func (c tagCore) With(fields []zapcore.Field) zapcore.Core {
	return tagCore{c.Core.With(fields), c.tag, c.batch}
}

func (c tagCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c tagCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	err := c.Core.Write(e, append(fields[:len(fields):len(fields)], c.tag))
	if c.batch != nil && e.Level >= zapcore.WarnLevel {
		_ = c.batch.Sync()
	}
	return err
}

// newInstanceID is a short random id for this run of the process.
func newInstanceID() string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // never fails on Linux (getrandom)
	return hex.EncodeToString(b[:])
}

// version is set by `make build` (-ldflags "-X main.version=..."), from
// git describe.
var version string

// buildVersion is the version make set, else the VCS revision Go recorded
// ("+dirty" with uncommitted changes), else the module version.
func buildVersion() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return info.Main.Version
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "+dirty"
	}
	return rev
}

package main

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"runtime/debug"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"gopkg.in/natefinch/lumberjack.v2"
)

// newLogger logs to the rotated file (and to stderr, for journald, unless
// turned off) at the configured level. Every line ends with the instance
// id: session ids restart at 1 with each run and the file is appended
// across runs (and several instances may log to one place), so a session's
// lines are found by session and instance together.
func newLogger(c *Config, instance string) (*zap.Logger, func(), error) {
	var level zapcore.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(filepath.Dir(c.LogFile), 0o755); err != nil {
		return nil, nil, &ConfigError{"aggregator.log.file", err.Error()}
	}
	rot := &lumberjack.Logger{Filename: c.LogFile, MaxSize: c.LogMaxSize, MaxBackups: c.LogMaxFiles - 1}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	enc.EncodeLevel = zapcore.CapitalLevelEncoder
	cores := []zapcore.Core{zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(rot), level)}
	if c.LogConsole {
		cores = append(cores, zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.Lock(os.Stderr), level))
	}
	core := tagCore{zapcore.NewTee(cores...), zap.String("instance", instance)}
	log := zap.New(core)
	return log, func() { _ = log.Sync(); _ = rot.Close() }, nil
}

// tagCore adds one field after every line's own: last, so that the lines
// read as before ("aggregator listening {"addr": ...") and tools that
// parse them keep working.
type tagCore struct {
	zapcore.Core
	tag zapcore.Field
}

func (c tagCore) With(fields []zapcore.Field) zapcore.Core {
	return tagCore{c.Core.With(fields), c.tag}
}

func (c tagCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c tagCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	return c.Core.Write(e, append(fields[:len(fields):len(fields)], c.tag))
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

package main

import (
	"os"
	"path/filepath"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"gopkg.in/natefinch/lumberjack.v2"
)

// newLogger logs to the rotated file (and to stderr, for journald, unless
// turned off) at the configured level.
func newLogger(c *Config) (*zap.Logger, func(), error) {
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
	// One core writing to both: each line is encoded once, and a logger
	// With fields (one per session) clones one core, not two.
	out := zapcore.AddSync(rot)
	if c.LogConsole {
		out = zapcore.NewMultiWriteSyncer(out, zapcore.Lock(os.Stderr))
	}
	log := zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(enc), out, level))
	return log, func() { _ = log.Sync(); _ = rot.Close() }, nil
}

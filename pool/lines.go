package pool

import (
	"bytes"
	"sync"
	"sync/atomic"
)

// lineWriter calls emit for each line written to it (without the newline),
// so PHP's stderr lands in the log line by line. Close emits a last
// unterminated line.
type lineWriter struct {
	mu   sync.Mutex
	buf  []byte
	emit func(line string)
}

func newLineWriter(emit func(string)) *lineWriter { return &lineWriter{emit: emit} }

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			room := maxLogLine - len(w.buf)
			if len(p) < room {
				w.buf = append(w.buf, p...)
				break
			}
			w.buf = append(w.buf, p[:room]...)
			p = p[room:]
			w.flushLocked()
			continue
		}
		w.buf = append(w.buf, p[:i]...)
		p = p[i+1:]
		w.flushLocked()
	}
	return n, nil
}

func (w *lineWriter) flushLocked() {
	line := string(bytes.TrimRight(w.buf, "\r"))
	w.buf = w.buf[:0]
	if line != "" {
		w.emit(line)
	}
}

// Close emits what is left.
func (w *lineWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.flushLocked()
	}
	return nil
}

// lines splits text into non-empty lines.
func lines(text []byte) []string {
	var out []string
	w := newLineWriter(func(l string) { out = append(out, l) })
	_, _ = w.Write(text)
	_ = w.Close()
	return out
}

// limitBuffer keeps at most limit bytes; past that it calls over once and
// drops the rest, so a script printing gigabytes cannot exhaust memory.
// exceeded is read by the runner while the copier writes it.
type limitBuffer struct {
	buf      bytes.Buffer
	limit    int
	exceeded atomic.Bool
	over     func()
}

func (b *limitBuffer) Write(p []byte) (int, error) {
	if b.exceeded.Load() {
		return len(p), nil
	}
	if b.limit > 0 && b.buf.Len()+len(p) > b.limit {
		b.exceeded.Store(true)
		if b.over != nil {
			b.over()
		}
		return len(p), nil
	}
	return b.buf.Write(p)
}

// Bytes is what was kept; call it once the writes are over.
func (b *limitBuffer) Bytes() []byte { return b.buf.Bytes() }

package pool

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roadrunner-server/goridge/v3/pkg/frame"
)

// roundtripPHP is `php pool/testdata/frame_roundtrip.php` with Go's ends of
// its fd 3 (we write) and fd 4 (we read).
type roundtripPHP struct {
	cmd    *exec.Cmd
	in     *os.File // fd 3 of PHP
	out    *os.File // fd 4 of PHP
	stderr syncBuffer
}

// syncBuffer is a bytes.Buffer safe to read while a process writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startRoundtrip(t *testing.T) *roundtripPHP {
	t.Helper()
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &roundtripPHP{in: inW, out: outR}
	p.cmd = exec.Command("php", "-d", "display_errors=stderr", fixture(t, "frame_roundtrip.php"))
	p.cmd.ExtraFiles = []*os.File{inR, outW}
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	inR.Close()
	outW.Close()
	t.Cleanup(func() {
		inW.Close()
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
		outR.Close()
	})
	return p
}

// echo sends f and reads back what PHP answered, and its bytes.
func (p *roundtripPHP) echo(t *testing.T, f *frame.Frame) (*inFrame, []byte) {
	t.Helper()
	_ = p.out.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := p.in.Write(f.Bytes()); err != nil {
		t.Fatalf("write: %v (stderr %q)", err, p.stderr.String())
	}
	var raw bytes.Buffer
	got, err := readFrame(io.TeeReader(p.out, &raw), 0)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return got, raw.Bytes()
}

func TestFrameRoundtripPHP(t *testing.T) {
	t.Parallel()
	p := startRoundtrip(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 200<<10/16) // 200 KB, over a pipe buffer
	cases := []struct {
		name    string
		flags   byte
		payload []byte
		options []uint32
	}{
		{"empty payload", flagControl | flagJSON, nil, nil},
		{"options", flagRaw, []byte(`{"a":1}`), []uint32{2, 0, 0xFFFFFFFF, 123456789}},
		{"200 KB", flagRaw, big, []uint32{1}},
		{"utf-8", flagRaw | flagError, []byte("Привет, 世界 🚀"), []uint32{7}},
		{"ten options", flagJSON, []byte("x"), []uint32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
	}
	for _, c := range cases {
		sent := newFrame(c.flags, c.payload, c.options...)
		got, raw := p.echo(t, sent)
		if got.flags != c.flags {
			t.Errorf("%s: flags %#x, want %#x", c.name, got.flags, c.flags)
		}
		if !bytes.Equal(got.payload, c.payload) {
			t.Errorf("%s: payload of %d bytes differs from the %d sent", c.name, len(got.payload), len(c.payload))
		}
		opts := got.options
		if len(opts) != len(c.options) || (len(opts) > 0 && !slicesEqual(opts, c.options)) {
			t.Errorf("%s: options %v, want %v", c.name, opts, c.options)
		}
		// PHP encodes byte for byte what goridge encodes.
		if !bytes.Equal(raw, sent.Bytes()) {
			t.Errorf("%s: PHP's frame\n% x\ndiffers from Go's\n% x", c.name, head(raw), head(sent.Bytes()))
		}
	}
	if s := p.stderr.String(); s != "" {
		t.Errorf("PHP wrote on stderr: %q", s)
	}
}

func TestFrameRoundtripPHPBadCRC(t *testing.T) {
	t.Parallel()
	p := startRoundtrip(t)
	good, _ := p.echo(t, newFrame(flagRaw, []byte("before"), 1))
	if string(good.payload) != "before" {
		t.Fatalf("payload %q", good.payload)
	}
	f := newFrame(flagRaw, []byte("corrupt"), 1)
	f.Header()[1] ^= flagJSON // flip a flag bit after the CRC was written
	if _, err := p.in.Write(f.Bytes()); err != nil {
		t.Fatal(err)
	}
	p.in.Close()
	_ = p.out.SetReadDeadline(time.Now().Add(20 * time.Second))
	if f, err := readFrame(p.out, 0); err != io.EOF {
		t.Errorf("after a bad frame, PHP answered %v, %v; want it to exit (EOF)", f, err)
	}
	err := p.cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Errorf("PHP exited with %v, want exit code 2", err)
	}
	if !strings.Contains(p.stderr.String(), "CRC error") {
		t.Errorf("stderr %q does not say CRC error", p.stderr.String())
	}
}

func TestReadFrameCRCMismatch(t *testing.T) {
	t.Parallel()
	for i := 0; i < 6; i++ { // every byte the CRC covers
		b := newFrame(flagRaw, []byte("payload"), 1).Bytes()
		if i == 0 {
			b[0] ^= 0x01 // header length 4 -> 5 words (the version stays 1)
		} else {
			b[i] ^= 0x10
		}
		_, err := readFrame(bytes.NewReader(append(b, 0, 0, 0, 0)), 0)
		if err == nil || !strings.Contains(err.Error(), "CRC mismatch") {
			t.Errorf("byte %d flipped: err %v, want a CRC mismatch", i, err)
		}
	}
	b := newFrame(flagRaw, []byte("payload")).Bytes()
	b[7] ^= 0xFF // the CRC itself
	if _, err := readFrame(bytes.NewReader(b), 0); err == nil || !strings.Contains(err.Error(), "CRC mismatch") {
		t.Errorf("CRC flipped: err %v, want a CRC mismatch", err)
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestReadFrameTooLarge(t *testing.T) {
	t.Parallel()
	b := newFrame(flagRaw, bytes.Repeat([]byte("x"), 1000), 5).Bytes()
	r := &countingReader{r: bytes.NewReader(b)}
	_, err := readFrame(r, 999)
	if !errors.Is(err, errFrameTooLarge) {
		t.Fatalf("err %v, want errFrameTooLarge", err)
	}
	if r.n != 16 {
		t.Errorf("read %d bytes, want only the 16 of the header and option", r.n)
	}
	// A header announcing 4 GB with no payload behind it: refused before any allocation or read.
	f := newFrame(flagRaw, nil)
	f.WritePayloadLen(f.Header(), 0xFFFFFFFF)
	f.WriteCRC(f.Header())
	if _, err := readFrame(bytes.NewReader(f.Bytes()), 1<<20); !errors.Is(err, errFrameTooLarge) {
		t.Errorf("4 GB frame: err %v, want errFrameTooLarge", err)
	}
	// At the limit exactly, it is fine.
	if f, err := readFrame(bytes.NewReader(b), 1000); err != nil || len(f.payload) != 1000 {
		t.Errorf("frame at the limit: %v", err)
	}
}

func TestReadFrameTruncated(t *testing.T) {
	t.Parallel()
	if _, err := readFrame(bytes.NewReader(nil), 0); err != io.EOF {
		t.Errorf("empty stream: err %v, want io.EOF", err)
	}
	b := newFrame(flagRaw, []byte("hello, world"), 1, 2).Bytes() // 12 + 8 + 12 bytes
	for _, n := range []int{1, 11, 12, 15, 19, 20, 25, len(b) - 1} {
		_, err := readFrame(bytes.NewReader(b[:n]), 0)
		if err != io.ErrUnexpectedEOF {
			t.Errorf("cut at %d of %d bytes: err %v, want io.ErrUnexpectedEOF", n, len(b), err)
		}
	}
	if f, err := readFrame(bytes.NewReader(b), 0); err != nil || string(f.payload) != "hello, world" {
		t.Errorf("whole frame: %v", err)
	}
}

func TestReadFrameBadHeader(t *testing.T) {
	t.Parallel()
	for name, mutate := range map[string]func(h []byte){
		"version 2":         func(h []byte) { h[0] = 2<<4 | 3 },
		"header length 2":   func(h []byte) { h[0] = 1<<4 | 2 },
		"header length 14":  func(h []byte) { h[0] = 1<<4 | 14 },
		"stream flags set":  func(h []byte) { h[10] = 1 },
		"stream flags set2": func(h []byte) { h[11] = 0x80 },
	} {
		f := newFrame(flagRaw, []byte("x"))
		mutate(f.Header())
		f.WriteCRC(f.Header())
		b := append(f.Bytes(), make([]byte, 64)...)
		if _, err := readFrame(bytes.NewReader(b), 0); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add(newFrame(flagRaw, []byte(`{"a":1}`), 1).Bytes())
	f.Add(newFrame(flagControl|flagJSON, []byte(`{"pid":1234}`)).Bytes())
	f.Add(newFrame(flagJSON|flagError, nil, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10).Bytes())
	f.Add(newFrame(flagRaw, []byte("Привет, 世界 🚀"), 0xFFFFFFFF).Bytes())
	f.Add([]byte{})
	f.Add([]byte("Could not open input file: x.php\n"))
	f.Add(bytes.Repeat([]byte{0xFF}, 64))
	f.Add([]byte{0x13, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		got, err := readFrame(r, 1<<16)
		if err != nil {
			return
		}
		consumed := data[:len(data)-r.Len()]
		again := newFrame(got.flags, got.payload, got.options...).Bytes()
		if !bytes.Equal(again, consumed) {
			t.Fatalf("accepted\n% x\nbut it re-encodes as\n% x", consumed, again)
		}
	})
}

func slicesEqual(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// head is the first bytes of b, for messages.
func head(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// TestAppendFrameIsNewFrame: a job frame written from its fields is the
// frame goridge builds, byte for byte.
func TestAppendFrameIsNewFrame(t *testing.T) {
	for _, payload := range [][]byte{nil, []byte("{}"), []byte(`{"code":"3310","brand":"ctr"}`), bytes.Repeat([]byte("x"), 70000)} {
		for _, opts := range [][]uint32{nil, {typeJob}, {typeJob, 7, uint32(Items)}, {typeFetch, 1 << 31, 0xFFFFFFFF, 12}} {
			for _, flags := range []byte{flagRaw, flagRaw | flagError, flagControl | flagJSON} {
				want := newFrame(flags, payload, opts...).Bytes()
				if got := appendFrame([]byte("prefix"), flags, payload, opts...)[6:]; !bytes.Equal(got, want) {
					t.Fatalf("flags %#x options %v, %d bytes: got % x, want % x", flags, opts, len(payload), got[:min(len(got), 32)], want[:min(len(want), 32)])
				}
			}
		}
	}
}

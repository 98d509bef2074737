package pool

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/roadrunner-server/goridge/v3/pkg/frame"
)

// Frame flags of the worker protocol (docs/PROTOCOL.md).
const (
	flagControl = frame.CONTROL
	flagRaw     = frame.CodecRaw
	flagJSON    = frame.CodecJSON
	flagError   = frame.ERROR
)

// Message types: option 0 of every frame that is not a CONTROL frame.
const (
	// typeJob: Go -> PHP a job [typeJob, id, kind]; PHP -> Go its result
	// [typeJob, id, memory, stray output bytes].
	typeJob = 1
	// typeFetch: PHP -> Go a fetch() call [typeFetch, id, call, head bytes];
	// Go -> PHP its answer, the same options.
	typeFetch = 2
)

// protocolVersion is what worker.php must announce in its handshake.
const protocolVersion = 2

// errFrameTooLarge: a frame's payload is over the reader's limit.
var errFrameTooLarge = errors.New("frame payload over the limit")

// newFrame builds a version 1 frame with flags, options and payload.
func newFrame(flags byte, payload []byte, options ...uint32) *frame.Frame {
	f := frame.NewFrame()
	f.WriteVersion(f.Header(), frame.Version1)
	f.WriteFlags(f.Header(), flags)
	if len(options) > 0 {
		f.WriteOptions(f.HeaderPtr(), options...)
	}
	f.WritePayloadLen(f.Header(), uint32(len(payload)))
	f.WritePayload(payload)
	f.WriteCRC(f.Header())
	return f
}

// appendFrame appends the bytes of newFrame(flags, payload, options...) to
// b: version 1, header length 3 + options, flags, payload length and the
// CRC32 (IEEE) of bytes 0-5, little endian; stream flags 0; the options;
// the payload.
func appendFrame(b []byte, flags byte, payload []byte, options ...uint32) []byte {
	start := len(b)
	b = append(b, frame.Version1<<4|byte(3+len(options)), flags)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(payload)))
	b = binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(b[start:start+6]))
	b = append(b, 0, 0)
	for _, o := range options {
		b = binary.LittleEndian.AppendUint32(b, o)
	}
	return append(b, payload...)
}

// controlFrame builds a CONTROL frame with a JSON payload.
func controlFrame(v any) *frame.Frame {
	b, _ := json.Marshal(v)
	return newFrame(flagControl|flagJSON, b)
}

// inFrame is a frame read from PHP: what the reader needs of it, in one
// allocation beside the payload (goridge's Frame costs about eight per
// frame to read, four frames per search).
type inFrame struct {
	flags   byte
	options []uint32 // the option words; points into opts
	payload []byte
	opts    [10]uint32
	head    [12 + 10*frame.WORD]byte // the header and options as read
}

// readFrame reads one frame, verifying its CRC. It checks the payload length
// against limit (0 = none) before reading the payload, so a runaway worker
// cannot make us allocate gigabytes; the frame it then returns beside
// errFrameTooLarge has its flags and options, to tell whose it was. It
// reports a stream cut short as io.ErrUnexpectedEOF, not as an empty payload.
// The layout is goridge's version 1 (appendFrame); FuzzReadFrame checks that
// what it accepts is what goridge encodes.
func readFrame(r io.Reader, limit int) (*inFrame, error) {
	f := &inFrame{}
	head := f.head[:]
	if _, err := io.ReadFull(r, head[:12]); err != nil {
		return nil, err
	}
	if v := head[0] >> 4; v != frame.Version1 {
		return nil, fmt.Errorf("bad frame: version %d, header % x", v, head[:12])
	}
	hl := int(head[0] & 0x0F)
	if hl < 3 || hl > 13 {
		return nil, fmt.Errorf("bad frame: header length %d words", hl)
	}
	n := (hl - 3) * frame.WORD
	if n > 0 {
		if _, err := io.ReadFull(r, head[12:12+n]); err != nil {
			return nil, unexpected(err)
		}
	}
	if crc32.ChecksumIEEE(head[:6]) != binary.LittleEndian.Uint32(head[6:10]) {
		return nil, fmt.Errorf("bad frame: CRC mismatch, header % x", head[:12])
	}
	// The stream flags are always 0 in this protocol and the CRC does not
	// cover them: anything else means the stream is out of step.
	if head[10] != 0 || head[11] != 0 {
		return nil, fmt.Errorf("bad frame: stream flags set, header % x", head[:12])
	}
	f.flags = head[1]
	for i := 0; i < hl-3; i++ {
		f.opts[i] = binary.LittleEndian.Uint32(head[12+i*frame.WORD:])
	}
	f.options = f.opts[:hl-3]
	size := binary.LittleEndian.Uint32(head[2:6])
	if limit > 0 && int64(size) > int64(limit) {
		return f, fmt.Errorf("%w: %d bytes", errFrameTooLarge, size)
	}
	if size > 0 {
		f.payload = make([]byte, size)
		if _, err := io.ReadFull(r, f.payload); err != nil {
			return nil, unexpected(err)
		}
	}
	return f, nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

package logsock

import (
	"errors"
	"fmt"
)

// headerLen is the size of the handshake and of a frame header.
const headerLen = 4

// DefaultMaxFrame is the default limit on a message: 1 MiB.
const DefaultMaxFrame = 1 << 20

// ByteOrder is the byte order of the wire's integers: "little" or "big".
type ByteOrder uint8

const (
	LittleEndian ByteOrder = iota // least significant byte first (the default)
	BigEndian                     // most significant byte first (network order)
)

// String returns "little" or "big".
func (o ByteOrder) String() string {
	switch o {
	case LittleEndian:
		return "little"
	case BigEndian:
		return "big"
	}
	return fmt.Sprintf("ByteOrder(%d)", uint8(o))
}

// MarshalText returns String's name.
func (o ByteOrder) MarshalText() ([]byte, error) {
	if o > BigEndian {
		return nil, fmt.Errorf("logsock: unknown byte order %d", uint8(o))
	}
	return []byte(o.String()), nil
}

// UnmarshalText accepts "little" or "big".
func (o *ByteOrder) UnmarshalText(text []byte) error {
	switch string(text) {
	case "little":
		*o = LittleEndian
	case "big":
		*o = BigEndian
	default:
		return fmt.Errorf("logsock: byte order %q: want little or big", text)
	}
	return nil
}

func (o ByteOrder) put(b []byte, v int32) {
	_ = b[3] // one bounds check
	u := uint32(v)
	if o == BigEndian {
		b[0], b[1], b[2], b[3] = byte(u>>24), byte(u>>16), byte(u>>8), byte(u)
		return
	}
	b[0], b[1], b[2], b[3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
}

func (o ByteOrder) get(b []byte) int32 {
	_ = b[3]
	if o == BigEndian {
		return int32(uint32(b[3]) | uint32(b[2])<<8 | uint32(b[1])<<16 | uint32(b[0])<<24)
	}
	return int32(uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24)
}

// ProtocolError describes a stream that breaks the wire format: a bad length
// or v2 level, or a part cut short (io.ErrUnexpectedEOF).
type ProtocolError struct {
	Part   string // "handshake", "frame header" or "frame body"; in v2, "hello" or "v2 frame header"
	Offset int64  // stream offset of the handshake's or frame's first byte
	Data   []byte // the header bytes, the start of a truncated part (at most 64 bytes of a body), or the bytes that are not UTF-8
	Length int64  // the length the header declared (frame parts only)
	Limit  int    // the limit in force, for ErrFrameTooLarge
	Err    error  // the cause: one of the errors named above
}

// Error names the part, its offset, the bytes quoted, and the cause.
func (e *ProtocolError) Error() string {
	const quoteMax = 16 // enough to recognise what arrived, short enough to log
	data := e.Data
	cut := ""
	if len(data) > quoteMax {
		data, cut = data[:quoteMax], "..."
	}
	switch {
	case errors.Is(e.Err, ErrFrameTooLarge):
		return fmt.Sprintf("logsock: %s at offset %d: %q declares %d bytes, limit %d: %v",
			e.Part, e.Offset, data, e.Length, e.Limit, e.Err)
	case errors.Is(e.Err, ErrInvalidCodePoint):
		return fmt.Sprintf("logsock: %s at offset %d: %q in a frame declaring %d code points: %v",
			e.Part, e.Offset, data, e.Length, e.Err)
	case errors.Is(e.Err, ErrNegativeLength):
		return fmt.Sprintf("logsock: %s at offset %d: %q declares %d: %v",
			e.Part, e.Offset, data, e.Length, e.Err)
	case errors.Is(e.Err, errBadLevel):
		return fmt.Sprintf("logsock: %s at offset %d: %q: %v", e.Part, e.Offset, data, e.Err)
	case e.Part == "frame body":
		return fmt.Sprintf("logsock: %s at offset %d: truncated inside a frame declaring %d bytes: %q%s: %v",
			e.Part, e.Offset, e.Length, data, cut, e.Err)
	}
	return fmt.Sprintf("logsock: %s at offset %d: truncated after %d of %d bytes: %q: %v",
		e.Part, e.Offset, len(e.Data), partSize[e.Part], data, e.Err)
}

// partSize is the size of the parts that a stream can end inside, a
// hello's without its tag.
var partSize = map[string]int{"handshake": headerLen, "frame header": headerLen, "hello": helloLen, "v2 frame header": header2Len}

// Unwrap returns e.Err.
func (e *ProtocolError) Unwrap() error { return e.Err }

// appendHandshake appends the handshake for pid to dst.
func appendHandshake(dst []byte, order ByteOrder, pid int32) []byte {
	var b [headerLen]byte
	order.put(b[:], pid)
	return append(dst, b[:]...)
}

// parseFrameHeader returns the message length that hdr[:headerLen]
// declares. A negative length, or one above limit, is a *ProtocolError
// that quotes the header.
func parseFrameHeader(hdr []byte, order ByteOrder, limit int) (int, error) {
	n := order.get(hdr)
	switch {
	case n < 0:
		return 0, &ProtocolError{Part: "frame header", Data: append([]byte(nil), hdr[:headerLen]...),
			Length: int64(n), Err: ErrNegativeLength}
	case int64(n) > int64(limit):
		return 0, &ProtocolError{Part: "frame header", Data: append([]byte(nil), hdr[:headerLen]...),
			Length: int64(n), Limit: limit, Err: ErrFrameTooLarge}
	}
	return int(n), nil
}

// framing encodes frames, and finds them again in a run of whole frames:
// logsock's length prefix (v1), v2's header (length, number, time and
// level: wire2.go), or syslog's octet count.
type framing struct {
	octets bool
	v2     bool
	order  ByteOrder
}

// meta is what a v2 frame carries beside its message; v1 and syslog's
// framing drop it.
type meta struct {
	seq   uint64 // 0 until the frame's number is known (see queue.number)
	at    int64  // when it was logged, Unix nanoseconds
	level Level
}

// maxHeader is the longest header of any framing: v2's.
const maxHeader = header2Len

// headerLen returns the size of the header of a frame of n message bytes.
func (f framing) headerLen(n int) int {
	switch {
	case f.v2:
		return header2Len
	case !f.octets:
		return headerLen
	}
	k := 2
	for ; n >= 10; n /= 10 {
		k++
	}
	return k
}

// size returns the size of a frame of n message bytes, header included.
func (f framing) size(n int) int { return f.headerLen(n) + n }

// header writes the header of a frame of n message bytes (0 <= n <=
// MaxInt32: the caller's MaxFrame), with m, at the start of b, and
// returns its length.
func (f framing) header(b []byte, n int, m meta) int {
	switch {
	case f.v2:
		f.order.putHeader2(b, int32(n), m.seq, m.at, uint8(m.level))
		return header2Len
	case !f.octets:
		f.order.put(b, int32(n))
		return headerLen
	}
	return f.octetCount(b, n)
}

// octetCount writes n in decimal and a space at the start of b.
func (f framing) octetCount(b []byte, n int) int {
	k := f.headerLen(n)
	b[k-1] = ' '
	for i := k - 2; i >= 0; i-- {
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return k
}

// put writes msg as a frame, with m, at the start of b, which holds
// size(len(msg)) bytes. It is on the hot path of both modes: v1's length
// prefix is written in line.
func (f framing) put(b, msg []byte, m meta) {
	switch {
	case f.v2:
		f.order.putHeader2(b, int32(len(msg)), m.seq, m.at, uint8(m.level))
		copy(b[header2Len:], msg)
	case !f.octets:
		f.order.put(b, int32(len(msg)))
		copy(b[headerLen:], msg)
	default:
		copy(b[f.octetCount(b, len(msg)):], msg)
	}
}

// number writes seq into the v2 frame that b starts with.
func (f framing) number(b []byte, seq uint64) {
	f.order.put(b[4:], int32(uint32(seq)))
}

// seqLow returns the low 32 bits of the number of the v2 frame that b
// starts with.
func (f framing) seqLow(b []byte) uint32 { return uint32(f.order.get(b[4:])) }

// frame returns the size of the frame that b starts with, and its message
// length. b holds whole frames that this framing encoded.
func (f framing) frame(b []byte) (size, msgLen int) {
	if !f.octets {
		n := int(f.order.get(b))
		return f.headerLen(n) + n, n
	}
	k := 0
	for ; b[k] != ' '; k++ {
		msgLen = 10*msgLen + int(b[k]-'0')
	}
	return k + 1 + msgLen, msgLen
}

package logsock

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Protocol v2's wire (PROTOCOL.md, "Acknowledged delivery"): the two
// hellos, the frame header and the collector's acknowledgements.

// helloMagic opens a v2 hello. Its first and last bytes have their high
// bit set, so a v1 reader takes it for a negative pid in either byte
// order, never a real one.
var helloMagic = [4]byte{0xFF, 'L', 'S', 0xFF}

const (
	protoV2        = 2
	helloLen       = 36 // a client's hello without its tag
	serverHelloLen = 20
	header2Len     = 17 // length, seq, time, level
	maxTagLen      = 48 // RFC 5424's APP-NAME
	ackLen         = 9  // 'A' and a uint64
	refuseLen      = 10 // 'R', a uint64, a reason
)

// The collector's messages to a v2 client.
const (
	msgAck     = 'A'
	msgRefuse  = 'R'
	msgGoodbye = 'G'
)

// The reasons a collector gives for a frame it refuses ('R').
const (
	refusedTooLarge = 1
	refusedHandler  = 2
)

// The statuses of a collector's hello.
const (
	helloAccepted    = 0
	helloUnsupported = 1
	helloBad         = 2
)

// errHello is the cause of every malformed hello, so that one errors.Is
// matches them all; the message says what was wrong.
var errHello = errors.New("logsock: bad v2 hello")

// hello is a v2 client's hello.
type hello struct {
	pid     int32
	session SessionID
	next    uint64 // the number of the first frame sent after the hello
	tag     string
}

// isHello reports whether b, a connection's first 4 bytes, opens a v2
// hello rather than a v1 pid.
func isHello(b []byte) bool { return bytes.Equal(b[:4], helloMagic[:]) }

// checkTag returns an error unless tag is 1-48 printable US-ASCII bytes.
func checkTag(tag string) error {
	if len(tag) == 0 || len(tag) > maxTagLen {
		return fmt.Errorf("%d bytes: want 1-%d", len(tag), maxTagLen)
	}
	for i := 0; i < len(tag); i++ {
		if tag[i] < 33 || tag[i] > 126 {
			return fmt.Errorf("byte %d is not printable US-ASCII", i)
		}
	}
	return nil
}

// appendHello appends h, whose tag checkTag has passed, to dst.
func (o ByteOrder) appendHello(dst []byte, h *hello) []byte {
	var b [helloLen]byte
	copy(b[:], helloMagic[:])
	b[4], b[5], b[6] = protoV2, 0, byte(len(h.tag))
	o.put(b[8:], h.pid)
	copy(b[12:], h.session[:])
	o.put64(b[28:], h.next)
	return append(append(dst, b[:]...), h.tag...)
}

// helloSize returns the size of the hello that b starts with, once b
// holds its fixed part (helloLen bytes).
func helloSize(b []byte) int { return helloLen + int(b[6]) }

// parseHello reads the hello that b holds whole (helloSize bytes). It
// returns the status a collector answers with, and for any status but
// helloAccepted an error that wraps errHello and says why.
func (o ByteOrder) parseHello(b []byte) (hello, uint8, error) {
	var h hello
	switch {
	case !isHello(b):
		return h, helloBad, fmt.Errorf("%w: magic %x", errHello, b[:4])
	case b[4] != protoV2:
		return h, helloUnsupported, fmt.Errorf("%w: version %d, this collector speaks 2", errHello, b[4])
	case b[5] != 0:
		return h, helloUnsupported, fmt.Errorf("%w: flags %#x, none known", errHello, b[5])
	case b[7] != 0:
		return h, helloBad, fmt.Errorf("%w: reserved byte %#x", errHello, b[7])
	}
	h.pid = o.get(b[8:])
	copy(h.session[:], b[12:28])
	h.next = o.get64(b[28:])
	h.tag = string(b[helloLen:helloSize(b)])
	switch {
	case h.session == SessionID{}:
		return h, helloBad, fmt.Errorf("%w: session id all zero", errHello)
	case h.next == 0:
		return h, helloBad, fmt.Errorf("%w: first frame numbered 0", errHello)
	}
	if err := checkTag(h.tag); err != nil {
		return h, helloBad, fmt.Errorf("%w: tag %q: %v", errHello, h.tag, err)
	}
	return h, helloAccepted, nil
}

// serverHello is a collector's answer to a hello.
type serverHello struct {
	status   uint8
	maxFrame int32
	acked    uint64 // the session's last frame that the collector has
}

func (o ByteOrder) appendServerHello(dst []byte, h serverHello) []byte {
	var b [serverHelloLen]byte
	copy(b[:], helloMagic[:])
	b[4], b[5] = protoV2, h.status
	o.put(b[8:], h.maxFrame)
	o.put64(b[12:], h.acked)
	return append(dst, b[:]...)
}

// parseServerHello reads a collector's hello from b[:serverHelloLen].
func (o ByteOrder) parseServerHello(b []byte) (serverHello, error) {
	h := serverHello{status: b[5], maxFrame: o.get(b[8:]), acked: o.get64(b[12:])}
	switch {
	case !isHello(b):
		return h, fmt.Errorf("%w: collector's magic %x (a v1 collector?)", errHello, b[:4])
	case b[4] != protoV2:
		return h, fmt.Errorf("%w: collector's version %d", errHello, b[4])
	case h.status == helloUnsupported:
		return h, fmt.Errorf("%w: the collector does not support this hello's version or flags", errHello)
	case h.status != helloAccepted:
		return h, fmt.Errorf("%w: the collector refused the hello (status %d)", errHello, h.status)
	case h.maxFrame < 0:
		return h, fmt.Errorf("%w: collector's max frame %d", errHello, h.maxFrame)
	}
	return h, nil
}

// putHeader2 writes a v2 frame header at the start of b: the message's
// length n, the low 32 bits of its number, its time and its level.
func (o ByteOrder) putHeader2(b []byte, n int32, seq uint64, unixNano int64, level uint8) {
	_ = b[header2Len-1]
	o.put(b, n)
	o.put(b[4:], int32(uint32(seq)))
	o.put64(b[8:], uint64(unixNano))
	b[16] = level
}

// getHeader2 reads what putHeader2 wrote; the length is parseFrameHeader's
// to check.
func (o ByteOrder) getHeader2(b []byte) (seqLow uint32, unixNano int64, level uint8) {
	_ = b[header2Len-1]
	return uint32(o.get(b[4:])), int64(o.get64(b[8:])), b[16]
}

// expandSeq returns the frame number that ends in the 32 bits low and
// follows prev: the smallest number above prev with those low bits.
func expandSeq(prev uint64, low uint32) uint64 {
	d := uint64(low - uint32(prev)) // mod 2^32
	if d == 0 {
		d = 1 << 32
	}
	return prev + d
}

// appendAck appends the acknowledgement of every frame numbered n or
// less.
func (o ByteOrder) appendAck(dst []byte, n uint64) []byte {
	var b [ackLen]byte
	b[0] = msgAck
	o.put64(b[1:], n)
	return append(dst, b[:]...)
}

// appendRefusal appends the acknowledgement of every frame below n, and
// the refusal of frame n for reason why.
func (o ByteOrder) appendRefusal(dst []byte, n uint64, why uint8) []byte {
	var b [refuseLen]byte
	b[0] = msgRefuse
	o.put64(b[1:], n)
	b[9] = why
	return append(dst, b[:]...)
}

// collectorMsg is one of the collector's messages after its hello.
type collectorMsg struct {
	kind byte // msgAck, msgRefuse or msgGoodbye
	n    uint64
	why  uint8
}

// errCollectorMsg is the cause of every malformed message from a
// collector.
var errCollectorMsg = errors.New("bad message from a v2 collector")

// parseCollectorMsg reads the message that b starts with. It returns the
// message and its size, or size 0 when b does not hold it whole yet.
func (o ByteOrder) parseCollectorMsg(b []byte) (collectorMsg, int, error) {
	if len(b) == 0 {
		return collectorMsg{}, 0, nil
	}
	m := collectorMsg{kind: b[0]}
	switch m.kind {
	case msgGoodbye:
		return m, 1, nil
	case msgAck:
		if len(b) < ackLen {
			return m, 0, nil
		}
		m.n = o.get64(b[1:])
		return m, ackLen, nil
	case msgRefuse:
		if len(b) < refuseLen {
			return m, 0, nil
		}
		m.n, m.why = o.get64(b[1:]), b[9]
		if m.why != refusedTooLarge && m.why != refusedHandler {
			return m, 0, fmt.Errorf("%w: refusal of frame %d for unknown reason %d", errCollectorMsg, m.n, m.why)
		}
		return m, refuseLen, nil
	}
	return m, 0, fmt.Errorf("%w: unknown message %#x", errCollectorMsg, m.kind)
}

func (o ByteOrder) put64(b []byte, v uint64) {
	if o == BigEndian {
		binary.BigEndian.PutUint64(b, v)
		return
	}
	binary.LittleEndian.PutUint64(b, v)
}

func (o ByteOrder) get64(b []byte) uint64 {
	if o == BigEndian {
		return binary.BigEndian.Uint64(b)
	}
	return binary.LittleEndian.Uint64(b)
}

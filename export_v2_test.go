package logsock

import (
	"fmt"
	"math"
)

// The v1 wire's encoders, for the raw clients of the tests: Go programs
// write through a LogSocket, and the library has no use for them.

// HeaderLen is the size of the handshake and of a frame header.
const HeaderLen = headerLen

// AppendHandshake appends the handshake for pid to dst.
func AppendHandshake(dst []byte, order ByteOrder, pid int32) []byte {
	return appendHandshake(dst, order, pid)
}

// AppendFrame appends msg to dst as one frame: its length, then its bytes.
// It panics if msg is longer than math.MaxInt32 bytes, which no frame can
// carry.
func AppendFrame(dst []byte, order ByteOrder, msg []byte) []byte {
	if len(msg) > math.MaxInt32 {
		panic(fmt.Sprintf("logsock: AppendFrame: %d bytes, limit %d", len(msg), math.MaxInt32))
	}
	var b [headerLen]byte
	order.put(b[:], int32(len(msg)))
	return append(append(dst, b[:]...), msg...)
}

// Protocol v2's codec, for the raw v2 clients of package logsock_test's
// tests.

// ServerHelloLen is the size of a collector's hello.
const ServerHelloLen = serverHelloLen

// AppendHello appends a v2 client's hello, tag unchecked, to dst.
func AppendHello(dst []byte, o ByteOrder, pid int32, session SessionID, next uint64, tag string) []byte {
	return o.appendHello(dst, &hello{pid: pid, session: session, next: next, tag: tag})
}

// ParseServerHello reads a collector's hello: its status, max frame and
// acked number, and an error unless it accepted.
func ParseServerHello(b []byte, o ByteOrder) (status uint8, maxFrame int32, acked uint64, err error) {
	h, err := o.parseServerHello(b)
	return h.status, h.maxFrame, h.acked, err
}

// AppendFrame2 appends a v2 frame to dst.
func AppendFrame2(dst []byte, o ByteOrder, seq uint64, unixNano int64, level uint8, msg []byte) []byte {
	var h [header2Len]byte
	o.putHeader2(h[:], int32(len(msg)), seq, unixNano, level)
	return append(append(dst, h[:]...), msg...)
}

// ParseCollectorMsg reads the collector's message that b starts with: its
// kind ('A', 'R' or 'G'), number, and size (0: not whole yet).
func ParseCollectorMsg(b []byte, o ByteOrder) (kind byte, n uint64, size int, err error) {
	m, size, err := o.parseCollectorMsg(b)
	return m.kind, m.n, size, err
}

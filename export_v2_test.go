package logsock

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

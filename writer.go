package logsock

import (
	"errors"
	"net"
	"time"
)

// copyMax is the most bytes that are copied into one buffer to go out in
// one send; a larger unit goes out from where its parts are, in sends of
// many buffers, since copying it would cost more than the extra buffers.
const copyMax = 2048

// frameWriter is a link's writer: it writes a unit of parts, optionally
// after a handshake, with as few syscalls as the platform allows and no
// allocation. Up to copyMax bytes are copied into one buffer (one); more
// go out uncopied (parts). How they reach the socket is the platform's:
// raw-descriptor sends on Unix (writer_unix.go), net.Conn on Windows
// (writer_windows.go) and over TLS (writer_conn.go).
type frameWriter struct {
	timeout  time.Duration // WriteTimeout: what a zero deadline means, from when a wait begins
	waiting  func(c *conn) // v2: reads the acknowledgements while a write waits for room
	deadline time.Time     // the deadline of the last wait for room, or zero

	small   []byte   // a small unit, copied: one buffer sends faster than three
	one     []byte   // the unit in one buffer: small, or the caller's own buffer
	scratch [][]byte // the parts of a large unit after a handshake
	parts   [][]byte // a large unit: what is left to write, parts[next:]; nil for a unit in one
	next    int
	written int         // bytes written by the last write
	bufs    net.Buffers // sendConn's: what is left of parts, kept here so that WriteTo does not allocate

	rawWriter // the platform's state
}

// prepare sets up a write of head (a handshake, or nil), then parts, in
// order. The writer consumes parts, reslicing its elements; the caller
// must not use it until the write ends.
func (w *frameWriter) prepare(head []byte, parts [][]byte) {
	w.written, w.deadline = 0, time.Time{}
	total := len(head)
	for _, p := range parts {
		total += len(p)
	}
	if total <= copyMax {
		if cap(w.small) < total {
			w.small = make([]byte, 0, max(total, 256))
		}
		w.small = w.small[:total]
		k := copy(w.small, head)
		for _, p := range parts {
			k += copy(w.small[k:], p)
		}
		w.one, w.parts = w.small, nil
		return
	}
	w.next = 0
	if head == nil {
		w.parts = parts
	} else {
		w.scratch = append(append(w.scratch[:0], head), parts...)
		w.parts = w.scratch
	}
}

// armDeadline sets c's write deadline for a write that may wait for room:
// deadline, or WriteTimeout from now if it is zero.
func (w *frameWriter) armDeadline(c *conn, deadline time.Time) error {
	if deadline.IsZero() {
		deadline = time.Now().Add(w.timeout)
	}
	w.deadline = deadline
	return c.nc.SetWriteDeadline(deadline)
}

// disarmDeadline clears c's write deadline after a write that failed with
// err, or did not: err comes first.
func disarmDeadline(c *conn, err error) error {
	if derr := c.nc.SetWriteDeadline(time.Time{}); err == nil {
		err = derr
	}
	return err
}

// finish drops the references to the unit written.
func (w *frameWriter) finish() {
	if w.parts != nil {
		w.clear()
	}
	w.one = nil
}

// clear drops the references to the caller's messages.
func (w *frameWriter) clear() {
	clear(w.scratch)
	w.parts = nil
}

// errNoProgress is why a write stops that the kernel took nothing of.
var errNoProgress = errors.New("send wrote nothing")

package logsock

import (
	"errors"
	"syscall"
	"time"
)

// copyMax is the most bytes that are copied into one buffer to go out with
// send(2); a larger write goes out from where its parts are, with one
// sendmsg of their iovecs, since copying it would cost more than the
// iovecs.
const copyMax = 2048

// frameWriter is a link's writer: it writes a unit of parts, optionally
// after a handshake, with as few syscalls as the kernel allows and no
// allocation: up to copyMax bytes are copied into one buffer and sent with
// send(2); more go out uncopied, with sendmsg calls of up to maxIov iovecs.
// Its callback for syscall.RawConn.Write is made once and reads its inputs
// from the struct, so that the hot path does not allocate a closure.
type frameWriter struct {
	small   []byte    // a small unit, copied: one buffer sends faster than three
	one     [1][]byte // parts of a small unit: small
	scratch [][]byte  // parts of a large unit after a handshake
	parts   [][]byte  // what is left to write: parts[next:]
	next    int
	written int   // bytes written by the last write
	wait    bool  // the callback may wait for room (false: report EAGAIN)
	again   bool  // the last attempt stopped at EAGAIN
	err     error // the error that stopped the last attempt
	fn      func(fd uintptr) bool

	peerGone bool // set by peekFn
	peekFn   func(fd uintptr) bool
}

func (w *frameWriter) init() {
	w.fn = w.attempt
	w.peekFn = w.peek
}

// closedByPeer reports whether the collector has closed c (or reset it):
// a non-blocking recv(MSG_PEEK) returns 0 at FIN, an error after RST, and
// EAGAIN on a live connection. The collector never sends, so a byte that
// is there is left alone. This is rsyslog's CheckConnection: without it,
// the first frame after a collector's graceful close goes into a dead
// connection, which the kernel accepts and the peer discards.
func (w *frameWriter) closedByPeer(c *conn) bool {
	w.peerGone = false
	if err := c.rc.Read(w.peekFn); err != nil {
		return true
	}
	return w.peerGone
}

func (w *frameWriter) peek(fd uintptr) bool {
	for {
		n, err := peekByte(int(fd))
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			w.peerGone = false
		default:
			w.peerGone = err != nil || n == 0
		}
		return true
	}
}

// prepare sets up a write of head (a handshake, or nil), then parts, in
// order. The writer consumes parts, reslicing its elements; the caller
// must not use it until the write ends.
func (w *frameWriter) prepare(head []byte, parts [][]byte) {
	w.next, w.written = 0, 0
	total := len(head)
	for _, p := range parts {
		total += len(p)
	}
	switch {
	case total <= copyMax:
		w.small = append(w.small[:0], head...)
		for _, p := range parts {
			w.small = append(w.small, p...)
		}
		w.one[0] = w.small
		w.parts = w.one[:]
	case head == nil:
		w.parts = parts
	default:
		w.scratch = append(append(w.scratch[:0], head), parts...)
		w.parts = w.scratch
	}
}

// send writes what prepare set up, on c. w.written tells
// how much went out, also on failure.
//
// It writes through the raw connection with MSG_DONTWAIT, so that it never
// blocks in the kernel, whatever O_NONBLOCK state another holder of the
// socket left on the shared description (O_NONBLOCK belongs to the open
// file description, which every holder of an inherited socket shares).
// The first attempt does not wait; only when the send buffer is full does
// it arm the deadline and wait for room, so the common case costs one
// syscall and no timer.
func (w *frameWriter) send(c *conn, deadline time.Time) error {
	defer w.clear()
	w.wait = false
	if err := w.run(c); err != nil || !w.again {
		return err
	}
	if err := c.nc.SetWriteDeadline(deadline); err != nil {
		return err
	}
	w.wait = true
	err := w.run(c)
	if derr := c.nc.SetWriteDeadline(time.Time{}); err == nil {
		err = derr
	}
	return err
}

func (w *frameWriter) run(c *conn) error {
	w.err, w.again = nil, false
	if err := c.rc.Write(w.fn); err != nil {
		return err
	}
	return w.err
}

// clear drops the references to the caller's messages.
func (w *frameWriter) clear() {
	w.one[0] = nil
	clear(w.scratch)
	w.parts = nil
}

// attempt is the RawConn.Write callback: it sends what is left, and returns
// false (wait for room) only when w.wait allows.
func (w *frameWriter) attempt(fd uintptr) bool {
	for w.next < len(w.parts) {
		k, err := sendParts(int(fd), w.parts[w.next:])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			w.again = true
			return !w.wait
		case err != nil:
			w.err = err
			return true
		case k == 0 && w.pending() > 0:
			w.err = errors.New("sendmsg wrote nothing")
			return true
		}
		w.advance(k)
	}
	w.again = false
	return true
}

func (w *frameWriter) pending() (n int) {
	for _, p := range w.parts[w.next:] {
		n += len(p)
	}
	return n
}

// advance consumes k written bytes from the front of the parts.
func (w *frameWriter) advance(k int) {
	w.written += k
	for w.next < len(w.parts) && k >= len(w.parts[w.next]) {
		k -= len(w.parts[w.next])
		w.next++
	}
	if k > 0 {
		w.parts[w.next] = w.parts[w.next][k:]
	}
}

//go:build unix

package logsock

// The frameWriter's way to the socket on Unix: send(2) and sendmsg(2) on
// the raw descriptor, never blocking in the kernel, and a peek with
// recv(2).

import (
	"errors"
	"io"
	"os"
	"syscall"
	"time"
)

// rawWriter is the frameWriter's state for the raw descriptor. Up to
// copyMax bytes go out with send(2) (attemptSmall); more with sendmsg
// calls of up to maxIov iovecs (attempt). Its callbacks for
// syscall.RawConn.Write are made once and read their inputs from the
// frameWriter, so that the hot path does not allocate a closure.
type rawWriter struct {
	smallFn  func(fd uintptr) bool
	partsFn  func(fd uintptr) bool
	wait     bool  // the callback may wait for room (false: report EAGAIN)
	again    bool  // the last attempt stopped at EAGAIN
	err      error // the error that stopped the last attempt
	peerGone bool  // set by peekFn
	arrived  bool  // set by peekFn: there are bytes to read
	peekFn   func(fd uintptr) bool
}

func (w *frameWriter) init(timeout time.Duration) {
	w.timeout = timeout
	w.smallFn = w.attemptSmall
	w.partsFn = w.attempt
	w.peekFn = w.peek
}

// canPeek is true: closedByPeer can tell.
const canPeek = true

// closedByPeer reports whether the collector has closed c (or reset it):
// a non-blocking recv(MSG_PEEK) returns 0 at FIN, an error after RST, and
// EAGAIN on a live connection. The collector never sends, so a byte that
// is there is left alone; but a TLS server does (tlsClosed). This is
// rsyslog's CheckConnection: without it, the first frame after a
// collector's graceful close goes into a dead connection, which the kernel
// accepts and the peer discards.
func (w *frameWriter) closedByPeer(c *conn) bool {
	w.peerGone, w.arrived = false, false
	if err := c.rc.Read(w.peekFn); err != nil {
		return true
	}
	if w.arrived && c.tls != nil {
		return c.tlsClosed()
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
			w.arrived = n > 0
		}
		return true
	}
}

// sendOne writes unit as it is, uncopied, on c: prepare and send in one,
// for the hot path. The common case costs one send(2) and no clock; a full
// send buffer is waited for until deadline, as send does.
func (w *frameWriter) sendOne(c *conn, unit []byte, deadline time.Time) error {
	w.written, w.deadline = 0, time.Time{}
	w.one = unit
	w.wait, w.err, w.again = false, nil, false
	err := c.rc.Write(w.smallFn)
	if err == nil {
		err = w.err
	}
	if err == nil && w.again {
		return w.send(c, deadline) // the send buffer is full: the way that waits
	}
	w.one = nil
	return err
}

// send writes what prepare set up, on c. w.written tells how much went
// out, also on failure.
//
// It writes through the raw connection with MSG_DONTWAIT, so that it never
// blocks in the kernel, whatever O_NONBLOCK state another holder of the
// socket left on the shared description (O_NONBLOCK belongs to the open
// file description, which every holder of an inherited socket shares).
// The first attempt does not wait; only when the send buffer is full does
// it arm the deadline (a zero deadline: WriteTimeout from now) and wait
// for room, so the common case costs one syscall, no timer and no clock.
func (w *frameWriter) send(c *conn, deadline time.Time) error {
	if c.tls != nil {
		return w.sendConn(c, deadline)
	}
	w.wait = false
	err := w.run(c)
	if err == nil && w.again {
		if err = w.armDeadline(c, deadline); err == nil {
			w.wait = true
			if c.acks != nil && w.waiting != nil {
				err = w.runReading(c)
			} else {
				err = w.run(c)
			}
			err = disarmDeadline(c, err)
		}
	}
	w.finish()
	return err
}

// ackPollWait is how long a v2 write waits for room before it reads the
// acknowledgements that have arrived, and waits again.
const ackPollWait = 10 * time.Millisecond

// runReading is run for a v2 connection whose send buffer is full: it
// waits for room in steps of ackPollWait, up to w.deadline, and between
// them reads the acknowledgements (waiting). A collector that waits to
// write an acknowledgement until it is read would otherwise stop
// reading, and the two would wait for each other until the deadline
// (TestAcksDelivered, against a collector written simply, over a Unix
// socket: a 5 s stall).
func (w *frameWriter) runReading(c *conn) error {
	for {
		step := time.Now().Add(ackPollWait)
		if w.deadline.Before(step) {
			step = w.deadline
		}
		if err := c.nc.SetWriteDeadline(step); err != nil {
			return err
		}
		err := w.run(c)
		if !errors.Is(err, os.ErrDeadlineExceeded) || !time.Now().Before(w.deadline) {
			return err
		}
		w.waiting(c)
		// A collector that said goodbye reads on only for a while: the
		// rest of this write goes, whole, on the next connection, rather
		// than wait out the deadline for room that may not come.
		if c.acks.goodbye.Load() {
			return errGoodbye
		}
		if err := c.acks.failed(); err != nil {
			return err
		}
	}
}

func (w *frameWriter) run(c *conn) error {
	w.err, w.again = nil, false
	fn := w.smallFn // the unit in one, as prepare or sendOne set it up
	if w.parts != nil {
		fn = w.partsFn
	}
	if err := c.rc.Write(fn); err != nil {
		return err
	}
	return w.err
}

// attemptSmall is the RawConn.Write callback for a unit in one buffer: it
// sends what is left of w.one, and returns false (wait for room) only when
// w.wait allows.
func (w *frameWriter) attemptSmall(fd uintptr) bool {
	for w.written < len(w.one) {
		k, err := sendOne(int(fd), w.one[w.written:])
		if more, ret := w.outcome(err, k > 0); !more {
			return ret
		}
		w.written += k
	}
	w.again = false
	return true
}

// attempt is the RawConn.Write callback for a large unit: it sends what is
// left of w.parts, and returns false (wait for room) only when w.wait
// allows.
func (w *frameWriter) attempt(fd uintptr) bool {
	for w.next < len(w.parts) {
		k, err := sendParts(int(fd), w.parts[w.next:])
		if more, ret := w.outcome(err, k > 0 || w.pending() == 0); !more {
			return ret
		}
		w.advance(k)
	}
	w.again = false
	return true
}

// outcome reads the result of one send, which made progress or not: more
// to go on sending, or else what the callback returns.
func (w *frameWriter) outcome(err error, progress bool) (more, ret bool) {
	switch {
	case err == syscall.EINTR:
		return true, false
	case err == syscall.EAGAIN:
		w.again = true
		return false, !w.wait
	case err != nil:
		w.err = err
		return false, true
	case !progress:
		w.err = errNoProgress
		return false, true
	}
	return true, false
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

// endedByPeer reports whether a write failed because the collector ended
// the connection (it reset it, or closed it and the kernel then reset it:
// ECONNRESET, EPIPE), not because it was slow (a timeout).
func endedByPeer(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}

// arrivedReader reads what has arrived on a socket without waiting: the
// callback for syscall.RawConn.Read is made once, so that a read
// allocates nothing.
type arrivedReader struct {
	p   []byte
	n   int
	err error
	fn  func(fd uintptr) bool
}

// read reads into p what has arrived on rc's socket, without waiting:
// os.ErrDeadlineExceeded if nothing has, io.EOF at the end.
func (r *arrivedReader) read(rc syscall.RawConn, p []byte) (int, error) {
	if r.fn == nil {
		r.fn = func(fd uintptr) bool {
			for {
				if r.n, r.err = recvNow(int(fd), r.p); r.err != syscall.EINTR {
					return true
				}
			}
		}
	}
	r.p = p
	cerr := rc.Read(r.fn)
	r.p = nil
	switch {
	case cerr != nil:
		return 0, cerr
	case r.err == syscall.EAGAIN:
		return 0, os.ErrDeadlineExceeded
	case r.err != nil:
		return 0, r.err
	case r.n == 0 && len(p) > 0:
		return 0, io.EOF
	}
	return r.n, nil
}

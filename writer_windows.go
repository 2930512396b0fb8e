package logsock

// The frameWriter's way to the socket on Windows: net.Conn's Write, under
// the write deadline. The raw connection cannot wait for room there
// (syscall.RawConn.Write fails with EWINDOWS when its callback asks to
// wait), and a socket has no send that does not block: Go opens sockets
// in blocking mode, for overlapped I/O.

import (
	"errors"
	"net"
	"syscall"
	"time"
)

// rawWriter is the frameWriter's state on Windows: the buffers of a large
// unit, kept here so that handing them to net.Buffers.WriteTo does not
// allocate.
type rawWriter struct {
	bufs net.Buffers
}

func (w *frameWriter) init(timeout time.Duration) { w.timeout = timeout }

// canPeek is false: without a recv that does not wait there is no peek on
// Windows (see Config.PeekInterval).
const canPeek = false

// closedByPeer reports false: there is no peek.
func (w *frameWriter) closedByPeer(*conn) bool { return false }

// sendOne writes unit as it is, uncopied, on c, until deadline.
func (w *frameWriter) sendOne(c *conn, unit []byte, deadline time.Time) error {
	w.one = unit
	return w.send(c, deadline)
}

// send writes what prepare set up, on c, until deadline (a zero deadline:
// WriteTimeout from now, as on Unix, except that the time counts from the
// start of the write rather than from when it has to wait for room). A
// large unit goes out through net.Buffers, which Go sends with one
// WSASend. w.written tells how much went out, also on failure.
func (w *frameWriter) send(c *conn, deadline time.Time) error {
	err := w.armDeadline(c, deadline)
	if err == nil {
		err = disarmDeadline(c, w.write(c.nc))
	}
	w.finish()
	return err
}

func (w *frameWriter) write(nc net.Conn) error {
	if w.parts == nil {
		n, err := nc.Write(w.one)
		w.written = n
		return err
	}
	w.bufs = w.parts[w.next:]
	var err error
	for len(w.bufs) > 0 && err == nil { // WriteTo consumes what it sends
		var n int64
		n, err = w.bufs.WriteTo(nc)
		w.written += int(n)
		if n == 0 && err == nil && len(w.bufs) > 0 {
			err = errNoProgress
		}
	}
	w.bufs = nil
	return err
}

// endedByPeer reports whether a write failed because the collector ended
// the connection (WSAECONNRESET, WSAECONNABORTED), not because it was
// slow (a timeout).
func endedByPeer(err error) bool {
	return errors.Is(err, syscall.WSAECONNRESET) || errors.Is(err, syscall.WSAECONNABORTED)
}

package logsock

// The frameWriter's way to the socket on Windows: net.Conn's Write, under
// the write deadline. The raw connection cannot wait for room there
// (syscall.RawConn.Write fails with EWINDOWS when its callback asks to
// wait), and a socket has no send that does not block: Go opens sockets
// in blocking mode, for overlapped I/O.

import (
	"errors"
	"syscall"
	"time"
)

// rawWriter is the frameWriter's state on Windows: none beyond the
// frameWriter's own.
type rawWriter struct{}

func (w *frameWriter) init(timeout time.Duration) { w.timeout = timeout }

// canPeek is false: without a recv that does not wait there is no peek on
// Windows (see Config.PeekInterval).
const canPeek = false

// closedByPeer reports false: there is no peek.
func (w *frameWriter) closedByPeer(*conn) bool { return false }

// sendOne writes unit as it is, uncopied, on c, until deadline.
func (w *frameWriter) sendOne(c *conn, unit []byte, deadline time.Time) error {
	w.one = unit
	return w.sendConn(c, deadline)
}

// send writes what prepare set up, on c, until deadline: see sendConn.
func (w *frameWriter) send(c *conn, deadline time.Time) error {
	return w.sendConn(c, deadline)
}

// endedByPeer reports whether a write failed because the collector ended
// the connection (WSAECONNRESET, WSAECONNABORTED), not because it was
// slow (a timeout).
func endedByPeer(err error) bool {
	return errors.Is(err, syscall.WSAECONNRESET) || errors.Is(err, syscall.WSAECONNABORTED)
}

// arrivedReader is not needed: without a peek (canPeek), nothing reads a
// socket without waiting.
type arrivedReader struct{}

func (*arrivedReader) read(syscall.RawConn, []byte) (int, error) { return 0, errors.ErrUnsupported }

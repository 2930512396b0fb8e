package logsock

// What Windows has of the system calls of sys_linux.go, and its ways for
// the collector's reads and the memory budget's buffers.

import (
	"errors"
	"time"

	"golang.org/x/sys/windows"
)

// The client's socket options on Windows (its writes: writer_windows.go).

// setUserTimeout does nothing: Windows has no TCP_USER_TIMEOUT. Keepalive
// and the write deadline still detect a dead collector, as on the BSDs.
func setUserTimeout(int, time.Duration) error { return nil }

// setSendBuffer asks for SO_SNDBUF n; best effort, as elsewhere.
func setSendBuffer(fd, n int) {
	windows.SetsockoptInt(windows.Handle(fd), windows.SOL_SOCKET, windows.SO_SNDBUF, n)
}

// The collector's socket calls on Windows: no credentials, and no accept
// that does not wait.

// credsSupported: on Windows the collector does not learn who connected or
// who wrote, so the Records' peer and writer fields stay 0, as on the BSDs.
const credsSupported = false

func peerCred(int) (pid int32, uid, gid uint32, err error) {
	return 0, 0, 0, errors.ErrUnsupported
}

func passCred(int) error { return errors.ErrUnsupported }

// acceptNow fails: Go opens a listener's socket in blocking mode, for
// overlapped AcceptEx, so there is no accept that does not wait. Shutdown
// then leaves the connections still queued to be reset when the listener
// closes (see Server.Shutdown).
func acceptNow(int) (int, error) { return -1, errors.ErrUnsupported }

// closedShort is not known on Windows: the Server reads no descriptor
// there.
func closedShort(fd, missing int) bool { return false }

// useRaw leaves c to be read through net.Conn's Read (readConn), as a
// connection that is not a socket is: Go opens sockets in blocking mode on
// Windows, for overlapped I/O, so there is no read that does not wait. An
// idle connection so keeps its read buffer, and Shutdown's drain waits up
// to 20 ms a read for bytes in flight rather than reading what has
// arrived.
func (c *serverConn) useRaw() {}

// mapBuf makes the buffer in Go's heap on Windows: what it frees goes back
// to the system at the pace of the garbage collector.
func mapBuf(n int) ([]byte, error) { return make([]byte, n), nil }

func unmapBuf([]byte) {}

// peekByte is never called on Windows, where canPeek is false.
func peekByte(int) (int, error) { return 0, errors.ErrUnsupported }

// shutdownRead is never called on Windows: the raw reads that call it are
// Unix's.
func shutdownRead(int) {}

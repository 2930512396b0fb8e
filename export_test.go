//go:build unix

package logsock

import (
	"time"

	"golang.org/x/sys/unix"
)

// Hooks for the tests of package logsock_test, which run child processes.

// SetFrameLock turns the cross-process frame lock on or off.
func SetFrameLock(on bool) { noFrameLock = !on }

// SetTLSVerdict turns on or off the wait for a TLS 1.3 server's verdict
// on the client's certificate, after the handshake.
func SetTLSVerdict(on bool) { noTLSVerdict = !on }

// SocketFlags returns the file status flags (F_GETFL) of the live
// connection's socket.
func (l *LogSocket) SocketFlags() (flags int, err error) {
	c := l.link.current()
	if cerr := c.rc.Control(func(fd uintptr) { flags, err = unix.FcntlInt(fd, unix.F_GETFL, 0) }); cerr != nil {
		return 0, cerr
	}
	return flags, err
}

// Shared reports whether the live connection is shared with other
// processes (writes take the frame lock).
func (l *LogSocket) Shared() bool {
	c := l.link.current()
	return c != nil && c.lock != nil
}

// BeginFrameAndStop takes the frame lock and writes part of a frame, as a
// process does that dies mid-frame; it keeps the lock.
func (l *LogSocket) BeginFrameAndStop(part []byte) error {
	l.link.role.Lock()
	defer l.link.role.Unlock()
	c := l.link.current()
	if err := c.lock.lock(farFuture(), nil); err != nil {
		return err
	}
	return c.rc.Write(func(fd uintptr) bool {
		_, err := unix.Write(int(fd), part)
		return err != unix.EAGAIN
	})
}

func farFuture() time.Time { return time.Now().Add(time.Hour) }

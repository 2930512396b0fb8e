//go:build unix && !linux

package logsock

// The system calls of the Unixes other than Linux (the BSDs, macOS): what
// sys_linux.go does there, with what they have.

import (
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// sendFlags: never block in the kernel. Where MSG_NOSIGNAL is missing, the Go
// runtime already turns SIGPIPE on a socket into EPIPE.
const sendFlags = unix.MSG_DONTWAIT

// sendParts writes parts with one sendmsg.
func sendParts(fd int, parts [][]byte) (int, error) {
	return unix.SendmsgBuffers(fd, parts, nil, nil, sendFlags)
}

// sendOne writes p, not empty, with one send.
func sendOne(fd int, p []byte) (int, error) {
	return unix.SendmsgBuffers(fd, [][]byte{p}, nil, nil, sendFlags)
}

// peekByte is recv(fd, 1 byte, MSG_PEEK|MSG_DONTWAIT).
func peekByte(fd int) (int, error) {
	var b [1]byte
	n, _, err := unix.Recvfrom(fd, b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	return n, err
}

// recvNow is recv(fd, p, MSG_DONTWAIT).
func recvNow(fd int, p []byte) (int, error) {
	n, _, err := unix.Recvfrom(fd, p, unix.MSG_DONTWAIT)
	return n, err
}

// setUserTimeout does nothing where TCP_USER_TIMEOUT does not exist;
// keepalive and the write deadline still detect a dead collector.
func setUserTimeout(int, time.Duration) error { return nil }

// setSendBuffer asks for SO_SNDBUF n. The BSDs refuse one above
// kern.ipc.maxsockbuf: the default then stays, which still works.
func setSendBuffer(fd, n int) { unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, n) }

// credsSupported: elsewhere the collector does not learn who connected or
// who wrote (the BSDs' LOCAL_PEERCRED and LOCAL_CREDS differ, and are not
// used yet), so the Records' peer and writer fields stay 0.
const credsSupported = false

func peerCred(int) (pid int32, uid, gid uint32, err error) {
	return 0, 0, 0, errors.ErrUnsupported
}

func passCred(int) error { return errors.ErrUnsupported }

// recvCred reads without credentials; the Server does not call it here.
func recvCred(fd int, p []byte) (int, int32, error) {
	n, err := unix.Read(fd, p)
	return n, 0, err
}

// acceptNow accepts a queued connection without waiting (the listener is
// non-blocking, as Go makes it), close-on-exec.
func acceptNow(fd int) (int, error) {
	nfd, _, err := unix.Accept(fd)
	if err == nil {
		unix.CloseOnExec(nfd)
	}
	return nfd, err
}

// closedShort is not known here (Linux's POLLRDHUP tells it): a paused
// connection whose client has left waits for its turn to find out.
func closedShort(fd, missing int) bool { return false }

// anonymousFile returns an unlinked temporary file, close-on-exec (as
// os.CreateTemp makes it): where there is no memfd, the nearest thing.
func anonymousFile() (*os.File, error) {
	f, err := os.CreateTemp("", "logsock-lock")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	return f, nil
}

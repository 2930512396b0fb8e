//go:build unix && !linux

package logsock

import (
	"errors"

	"golang.org/x/sys/unix"
)

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

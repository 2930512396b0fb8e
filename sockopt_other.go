//go:build unix && !linux

package logsock

import (
	"time"

	"golang.org/x/sys/unix"
)

// setUserTimeout does nothing where TCP_USER_TIMEOUT does not exist;
// keepalive and the write deadline still detect a dead collector.
func setUserTimeout(int, time.Duration) error { return nil }

// acceptNow accepts a queued connection without waiting (the listener is
// non-blocking, as Go makes it), close-on-exec.
func acceptNow(fd int) (int, error) {
	nfd, _, err := unix.Accept(fd)
	if err == nil {
		unix.CloseOnExec(nfd)
	}
	return nfd, err
}

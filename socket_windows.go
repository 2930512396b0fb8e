package logsock

// The client's socket options on Windows (its writes: writer_windows.go).

import (
	"time"

	"golang.org/x/sys/windows"
)

// setUserTimeout does nothing: Windows has no TCP_USER_TIMEOUT. Keepalive
// and the write deadline still detect a dead collector, as on the BSDs.
func setUserTimeout(int, time.Duration) error { return nil }

// setSendBuffer asks for SO_SNDBUF n; best effort, as elsewhere.
func setSendBuffer(fd, n int) {
	windows.SetsockoptInt(windows.Handle(fd), windows.SOL_SOCKET, windows.SO_SNDBUF, n)
}

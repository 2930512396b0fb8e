package logsocktest

import (
	"net"
	"testing"

	"golang.org/x/sys/windows"
)

// ErrConnRefused and ErrConnReset are what a TCP dial to a closed port,
// and a read after the peer's reset, fail with: Winsock's errors, not the
// errnos that syscall invents for Windows.
var ErrConnRefused, ErrConnReset error = windows.WSAECONNREFUSED, windows.WSAECONNRESET

// SetBacklog skips the test: Winsock's listen on a listening socket
// succeeds without changing its backlog.
func SetBacklog(t testing.TB, _ net.Listener, _ int) {
	t.Helper()
	t.Skip("a listener's backlog cannot be set again on Windows")
}

package logsock_test

import (
	"net"
	"testing"

	"golang.org/x/sys/windows"
)

// localNetwork is the network of the tests that need a collector, but
// test nothing of its network: TCP, as logsock does not promise Unix
// sockets on Windows.
const localNetwork = "tcp"

// What a TCP dial to a closed port, and a read after the peer's reset,
// fail with: Winsock's errors, not the errnos that syscall invents for
// Windows.
var errConnRefused, errConnReset error = windows.WSAECONNREFUSED, windows.WSAECONNRESET

// setBacklog skips the test: Winsock's listen on a listening socket
// succeeds without changing its backlog.
func setBacklog(t testing.TB, _ net.Listener, _ int) {
	t.Helper()
	t.Skip("a listener's backlog cannot be set again on Windows")
}

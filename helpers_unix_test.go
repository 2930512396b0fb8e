//go:build unix

package logsock_test

import (
	"net"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// localNetwork is the network of the tests that need a collector, but
// test nothing of its network.
const localNetwork = "unix"

// What a TCP dial to a closed port, and a read after the peer's reset,
// fail with.
var errConnRefused, errConnReset error = syscall.ECONNREFUSED, syscall.ECONNRESET

// setBacklog sets the backlog of l, which listens, to n: listen(2) again
// on a listening socket sets it.
func setBacklog(t testing.TB, l net.Listener, n int) {
	t.Helper()
	rc, err := l.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) { lerr = unix.Listen(int(fd), n) }); err != nil || lerr != nil {
		t.Fatalf("listen(%d): %v, %v", n, err, lerr)
	}
}

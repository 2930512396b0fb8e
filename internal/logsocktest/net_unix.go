//go:build unix

package logsocktest

import (
	"net"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// ErrConnRefused and ErrConnReset are what a TCP dial to a closed port,
// and a read after the peer's reset, fail with.
var ErrConnRefused, ErrConnReset error = syscall.ECONNREFUSED, syscall.ECONNRESET

// SetBacklog sets the backlog of l, which listens, to n: listen(2) again
// on a listening socket sets it.
func SetBacklog(t testing.TB, l net.Listener, n int) {
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

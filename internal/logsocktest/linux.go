//go:build linux

package logsocktest

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// WaitServing waits until Serve has set SO_PASSCRED on a Unix listener,
// its first act: a client that connected earlier and wrote in the instant
// between accept and the setsockopt on its socket would carry no writer
// pid (see serverConn.peerCreds), and the tests that check writer pids
// would fail by chance. It also checks that Serve sets the option.
func WaitServing(t testing.TB, l net.Listener) {
	t.Helper()
	ul, ok := l.(*net.UnixListener)
	if !ok {
		return
	}
	rc, err := ul.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		var v int
		var gerr error
		if err := rc.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED) }); err != nil {
			t.Fatal(err)
		}
		if gerr != nil {
			t.Fatal(gerr)
		}
		if v == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("Serve did not set SO_PASSCRED on its Unix listener")
		}
		time.Sleep(time.Millisecond) // no signal to wait on: Serve runs on its own goroutine
	}
}

// WindowClosed reports whether c, the reading end of a TCP connection,
// advertises a zero receive window: its peer can send nothing more until
// c is read, so a write of the peer's that waits for room then waits for
// good. Before Linux 6.2, TCP_INFO has no tcpi_rcv_wnd and reads as 0:
// closed. Other connections have no window: true.
func WindowClosed(c net.Conn) (bool, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return true, nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return false, err
	}
	var info *unix.TCPInfo
	var gerr error
	if err := rc.Control(func(fd uintptr) { info, gerr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) }); err != nil {
		return false, err
	}
	if gerr != nil {
		return false, gerr
	}
	return info.Rcv_wnd == 0, nil
}

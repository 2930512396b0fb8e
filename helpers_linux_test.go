package logsock_test

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// waitServing waits until Serve has set SO_PASSCRED on a Unix listener,
// its first act: a client that connected earlier and wrote in the instant
// between accept and the setsockopt on its socket would carry no writer
// pid (see serverConn.peerCreds), and the tests that check writer pids
// would fail by chance. It also checks that Serve sets the option.
func waitServing(t testing.TB, l net.Listener) {
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

//go:build unix

package logsock_test

import (
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/logsock/logsock"
	"golang.org/x/sys/unix"
)

// localNetwork is the network of the tests that need a collector, but
// test nothing of its network.
const localNetwork = "unix"

// dupOwn returns descriptors of ls's socket and lock file, as a child
// would inherit them, through SendConn to this same process.
func dupOwn(t *testing.T, ls *logsock.LogSocket) (sock, lock int) {
	t.Helper()
	_, fds := receiveRaw(t, ls)
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return fds[0], fds[1]
}

// receiveRaw returns the body and the descriptors of the message that
// ls.SendConn sends.
func receiveRaw(t *testing.T, ls *logsock.LogSocket) ([]byte, []int) {
	t.Helper()
	a, b, err := unixPair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	if err := ls.SendConn(a); err != nil {
		t.Fatal(err)
	}
	buf, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(8))
	n, oobn, _, _, err := b.ReadMsgUnix(buf, oob)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		t.Fatalf("control messages %v, %v", msgs, err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 2 {
		t.Fatalf("rights %v, %v", fds, err)
	}
	return buf[:n], fds
}

// pairT is unixPair for a test, which closes the two ends when it ends.
func pairT(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	a, b, err := unixPair()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// unixPair returns the two ends of a connected Unix stream socket pair.
// They are made close-on-exec under syscall.ForkLock, as the os and net
// packages make theirs: a child that a test in parallel starts meanwhile
// must not inherit them.
func unixPair() (*net.UnixConn, *net.UnixConn, error) {
	syscall.ForkLock.RLock()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err == nil {
		unix.CloseOnExec(fds[0])
		unix.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, nil, err
	}
	conns := make([]*net.UnixConn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "pair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			return nil, nil, err
		}
		conns[i] = c.(*net.UnixConn)
	}
	return conns[0], conns[1], nil
}

// openFDs returns this process's open descriptors, each with what it
// refers to ("socket:[1234]", a path).
func openFDs(t *testing.T) map[string]string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	fds := make(map[string]string, len(ents))
	for _, e := range ents {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil { // else closed meanwhile
			fds[e.Name()] = target
		}
	}
	return fds
}

// checkNoNewFDs fails the test if a descriptor is open now that was not
// open, to the same file, at before: one that what was tested leaked. A
// descriptor closed meanwhile is not this test's (issue 17: one was,
// under -race beside CPU hogs; the garbage collector closes the
// descriptor of an unreachable os.File or os.Process when it runs).
func checkNoNewFDs(t *testing.T, before map[string]string, what string) {
	t.Helper()
	for fd, target := range openFDs(t) {
		if before[fd] != target {
			t.Errorf("descriptor %s, %s, open after %s and not before: leaked", fd, target, what)
		}
	}
}

// connFD returns c's descriptor, valid while c is open.
func connFD(t testing.TB, c net.Conn) int {
	t.Helper()
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fd int
	rc.Control(func(f uintptr) { fd = int(f) })
	return fd
}

// dupConn returns a second descriptor of c's socket, close-on-exec (under
// syscall.ForkLock, as unixPair).
func dupConn(t *testing.T, c net.Conn) int {
	t.Helper()
	orig := connFD(t, c)
	syscall.ForkLock.RLock()
	fd, err := syscall.Dup(orig)
	if err == nil {
		syscall.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		t.Fatal(err)
	}
	return fd
}

// shareInProcess shares ls's connection with a second LogSocket of this
// process, configured by cfg, as with a child process: from then on,
// every write takes the frame lock.
func shareInProcess(tb testing.TB, ls *logsock.LogSocket, cfg *logsock.Config) *logsock.LogSocket {
	tb.Helper()
	x, y, err := unixPair()
	if err != nil {
		tb.Fatal(err)
	}
	defer x.Close()
	defer y.Close()
	if err := ls.SendConn(x); err != nil {
		tb.Fatal(err)
	}
	other, err := logsock.ReceiveConn(y, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return other
}

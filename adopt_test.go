//go:build unix

package logsock_test

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/logsock/logsock"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

// TestFailedAdoptionLeaksNothing: FromEnv and ReceiveConn that are handed
// a descriptor that is not the socket meant fail with ErrStaleFD, in both
// modes, and leave no goroutine (batching mode's writer) and no descriptor
// of their own behind (issue 11, fault 4). ReceiveConn closes the
// descriptors its recvmsg made; FromEnv leaves the ones it was named
// open, since they are not its own (issue 17).
func TestFailedAdoptionLeaksNothing(t *testing.T) {
	for _, batching := range []bool{false, true} {
		cfg := &logsock.Config{Batching: batching}
		t.Run(fmt.Sprintf("FromEnv/batching=%v", batching), func(t *testing.T) {
			leaks := goleak.IgnoreCurrent()
			sock, lock := pipeFDs(t)
			t.Cleanup(func() { unix.Close(sock); unix.Close(lock) })
			before := openFDs(t)
			t.Setenv(envNetwork, "unix")
			t.Setenv(envAddress, "/nonexistent/logsock")
			t.Setenv(envOrder, "little")
			t.Setenv(envFD, strconv.Itoa(sock))
			t.Setenv(envSocket, "1:1")
			t.Setenv(envLockFD, strconv.Itoa(lock))
			if ls, err := logsock.FromEnv(cfg); !errors.Is(err, logsock.ErrStaleFD) {
				if ls != nil {
					ls.Close()
				}
				t.Fatalf("FromEnv: %v, want ErrStaleFD", err)
			}
			goleak.VerifyNone(t, leaks)
			checkNoNewFDs(t, before, "FromEnv")
			after := openFDs(t)
			for _, fd := range []string{strconv.Itoa(sock), strconv.Itoa(lock)} {
				if after[fd] != before[fd] {
					t.Errorf("descriptor %s, %s, named to FromEnv: %q after, want it left open", fd, before[fd], after[fd])
				}
			}
		})
		t.Run(fmt.Sprintf("ReceiveConn/batching=%v", batching), func(t *testing.T) {
			a, b := pairT(t)
			leaks := goleak.IgnoreCurrent()
			before := openFDs(t)
			sock, lock := pipeFDs(t)
			body := strings.Join([]string{envNetwork + "=unix", envAddress + "=/nonexistent/logsock",
				envOrder + "=little", envSocket + "=1:1"}, "\x00")
			_, _, err := a.WriteMsgUnix([]byte(body), unix.UnixRights(sock, lock), nil)
			unix.Close(sock) // the message carries copies
			unix.Close(lock)
			if err != nil {
				t.Fatal(err)
			}
			if ls, err := logsock.ReceiveConn(b, cfg); !errors.Is(err, logsock.ErrStaleFD) {
				if ls != nil {
					ls.Close()
				}
				t.Fatalf("ReceiveConn: %v, want ErrStaleFD", err)
			}
			goleak.VerifyNone(t, leaks)
			checkNoNewFDs(t, before, "ReceiveConn")
		})
	}
}

// pipeFDs returns the two ends of a pipe as bare descriptors: not the
// socket and lock file that a LogSocket can adopt.
func pipeFDs(t *testing.T) (int, int) {
	t.Helper()
	var p [2]int
	syscall.ForkLock.RLock() // close-on-exec before a child can inherit them (see unixPair)
	err := unix.Pipe(p[:])
	if err == nil {
		unix.CloseOnExec(p[0])
		unix.CloseOnExec(p[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		t.Fatal(os.NewSyscallError("pipe", err))
	}
	return p[0], p[1]
}

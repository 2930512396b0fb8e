//go:build unix

package logsock

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/logsock/logsock/internal/testenv"
)

// lockProbe is a process other than this one, taking the frame lock as
// the contract says (examples/pychild/child.py): "probe" tells whether
// another process holds it; "ask" waits for it setting byte 4 (wanted);
// "wait" waits for it without asking. The lock file is its fd 3.
const lockProbe = `
import errno, fcntl, os, sys, time
fd, mode = 3, sys.argv[1]
def take():
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 0)
        return True
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
if mode == "probe":
    print("free" if take() else "held")
    sys.exit(0)
print("waiting", flush=True)
deadline = time.monotonic() + 10
while not take():
    if mode == "ask":
        os.pwrite(fd, b"\x01", 4)
    if time.monotonic() > deadline:
        print("timeout")
        sys.exit(1)
    time.sleep(0.0002)
os.pwrite(fd, b"\x00", 4)
print("got")
`

type probe struct {
	cmd  *exec.Cmd
	out  *bufio.Scanner
	done chan error
}

// startProbe runs lockProbe in mode on the lock file f, and waits for its
// first line if it is one that waits. (f is made before the frames: to
// close a descriptor of the file would end the parking.)
func startProbe(t *testing.T, f *os.File, mode string) *probe {
	t.Helper()
	cmd := exec.Command(testenv.Python(t), "-c", lockProbe, mode)
	cmd.ExtraFiles = []*os.File{f}
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &probe{cmd: cmd, out: bufio.NewScanner(stdout), done: make(chan error, 1)}
	t.Cleanup(func() { cmd.Process.Kill(); <-p.done })
	if mode != "probe" {
		if got := p.line(t); got != "waiting" {
			t.Fatalf("probe %s: %q", mode, got)
		}
	}
	go func() {
		p.out.Scan() // the last line, read before Wait closes the pipe
		p.done <- cmd.Wait()
	}()
	return p
}

func (p *probe) line(t *testing.T) string {
	t.Helper()
	if !p.out.Scan() {
		t.Fatalf("probe: no line: %v", p.out.Err())
	}
	return strings.TrimSpace(p.out.Text())
}

// last waits for the probe to exit and returns its last line.
func (p *probe) last(t *testing.T) string {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("probe: %v (%q)", err, p.out.Text())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("probe did not finish")
	}
	return strings.TrimSpace(p.out.Text())
}

// newTestLock returns a lock file, and a descriptor of it for probes.
func newTestLock(t *testing.T) (*frameLock, *os.File) {
	k, err := newLockFile()
	if err != nil {
		t.Fatal(err)
	}
	f, err := k.dup()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		closeLockFile(f)
		k.close()
	})
	return k, f
}

func frame(t *testing.T, k *frameLock) {
	t.Helper()
	if err := k.lock(time.Now().Add(10*time.Second), nil); err != nil {
		t.Fatal(err)
	}
	k.unlock(false)
}

func isParked(k *frameLock) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.parked
}

// TestFrameLockParks: after a frame, the record lock stays with the
// holder, and another process cannot take it.
func TestFrameLockParks(t *testing.T) {
	t.Parallel()
	k, f := newTestLock(t)
	k.park = time.Hour
	if got := startProbe(t, f, "probe").last(t); got != "free" {
		t.Fatalf("before any frame: %s, want free", got)
	}
	frame(t, k)
	if got := startProbe(t, f, "probe").last(t); got != "held" {
		t.Fatalf("after a frame: %s, want held (parked)", got)
	}
}

// TestFrameLockWanted: a process that asks for the lock (byte 4) gets it
// while a holder writes frames back to back, parking the lock between
// them, and byte 4 is clear afterwards.
func TestFrameLockWanted(t *testing.T) {
	t.Parallel()
	k, f := newTestLock(t)
	k.park = 5 * time.Millisecond
	stop, stopped := make(chan struct{}), make(chan error)
	var frames int
	go func() {
		for {
			select {
			case <-stop:
				stopped <- nil
				return
			default:
			}
			if err := k.lock(time.Now().Add(10*time.Second), nil); err != nil {
				stopped <- err
				return
			}
			k.unlock(false)
			frames++
		}
	}()
	p := startProbe(t, f, "ask") // the holder is busy before the probe asks
	got := p.last(t)
	close(stop)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if got != "got" {
		t.Fatalf("the asking process: %s", got)
	}
	if k.mem[lockWantedOffset] != 0 {
		t.Error("byte 4 still set after the waiter got the lock")
	}
	t.Logf("the holder wrote %d frames", frames)
}

// TestFrameLockParkingEnds: a holder that goes quiet lets go after
// parkTime, for a process that does not ask.
func TestFrameLockParkingEnds(t *testing.T) {
	t.Parallel()
	k, f := newTestLock(t)
	k.park = 5 * time.Millisecond
	frame(t, k)
	if got := startProbe(t, f, "wait").last(t); got != "got" {
		t.Fatalf("the waiting process: %s", got)
	}
}

// TestFrameLockCloseDescriptor: closing another descriptor of the lock
// file drops the process's record lock, so it ends the parking first (the
// holder must not go on believing it holds the lock); and a second handle
// on the file in this process is the same frameLock.
func TestFrameLockCloseDescriptor(t *testing.T) {
	t.Parallel()
	k, f := newTestLock(t)
	k.park = time.Hour
	frame(t, k)
	d, err := k.dup()
	if err != nil {
		t.Fatal(err)
	}
	closeLockFile(d)
	if isParked(k) {
		t.Fatal("still parked after a descriptor of the lock file was closed")
	}
	if got := startProbe(t, f, "probe").last(t); got != "free" {
		t.Fatalf("after the close: %s, want free", got)
	}

	d, err = k.dup()
	if err != nil {
		t.Fatal(err)
	}
	frame(t, k)
	k2, err := openLock(d)
	if err != nil {
		t.Fatal(err)
	}
	if k2 != k {
		t.Fatal("a second handle on the lock file is a second frameLock: POSIX locks would not exclude them")
	}
	if isParked(k) {
		t.Fatal("still parked after openLock closed its descriptor")
	}
	k2.close() // one use of two: k stays open
	frame(t, k)
	if got := startProbe(t, f, "probe").last(t); got != "held" {
		t.Fatalf("after a frame on the remaining handle: %s, want held", got)
	}
}

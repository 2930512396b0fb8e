package logsock

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// The lock file: a memfd (on Linux; elsewhere an unlinked temporary file)
// of lockFileSize bytes, shared by every process
// that holds the connection, mapped into each. Its layout is part of the
// inheritance contract (doc.go):
//
//	byte 0   1 while a holder writes a frame: "frame in progress"
//	byte 1   1 once a holder has found byte 0 set when it took the lock:
//	         the holder before it died inside a frame, so the stream is
//	         torn for good, and every holder must stop using it
//
// A holder takes a POSIX record lock (fcntl F_SETLK, F_WRLCK) on byte 0
// for each frame. POSIX locks exclude processes, not the threads of one
// (the LogSocket's mutex does that), are released by the kernel when a
// holder dies, and are dropped when a process closes any descriptor of the
// file: so each process keeps exactly one, for as long as it holds the
// connection. OFD locks and flock do not work here: every holder shares
// one open file description (SPEC: "Inheriting a connection").
const (
	lockFileSize   = 16
	lockFlagOffset = 0
	lockTornOffset = 1
)

// errTorn is why a holder drops a shared connection whose stream another
// holder left torn.
var errTorn = errors.New("a process died while writing a frame on the shared connection: the stream is torn")

// frameLock is one process's handle on the lock file. The bytes of the
// mapping are read and written only under the record lock, whose fcntl
// calls order the memory accesses of the processes.
type frameLock struct {
	f   *os.File
	mem []byte // the mapping of the lock file
}

// newLockFile creates the lock file, close-on-exec.
func newLockFile() (*frameLock, error) {
	f, err := anonymousFile()
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(lockFileSize); err != nil {
		f.Close()
		return nil, err
	}
	return openLock(f)
}

// openLock maps a lock file made by newLockFile, here or in a parent.
func openLock(f *os.File) (*frameLock, error) {
	var mem []byte
	var merr error
	rc, err := f.SyscallConn()
	if err == nil {
		err = rc.Control(func(fd uintptr) {
			var st unix.Stat_t
			if merr = unix.Fstat(int(fd), &st); merr != nil {
				return
			}
			if st.Size < lockFileSize {
				merr = fmt.Errorf("lock file has %d bytes, want %d", st.Size, lockFileSize)
				return
			}
			mem, merr = unix.Mmap(int(fd), 0, lockFileSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		})
	}
	if err == nil {
		err = merr
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("logsock: lock file: %w", err)
	}
	return &frameLock{f: f, mem: mem}, nil
}

// lock takes the record lock, polling until deadline: a blocking F_SETLKW
// could wait forever on a holder that is stopped (SIGSTOP). Then it checks
// the stream: a set flag means that the last holder died inside a frame.
// It returns errTorn, with the lock released, if the stream is torn.
func (k *frameLock) lock(deadline time.Time) error {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: lockFlagOffset, Len: 1}
	for pause := time.Duration(0); ; {
		err := unix.FcntlFlock(k.f.Fd(), unix.F_SETLK, &lk)
		if err == nil {
			break
		}
		if err != unix.EAGAIN && err != unix.EACCES && err != unix.EINTR {
			return os.NewSyscallError("fcntl F_SETLK", err)
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("logsock: waiting for the frame lock: %w", os.ErrDeadlineExceeded)
		}
		// Another process writes a frame: that takes microseconds, or as
		// long as its write waits for room.
		pause = min(max(2*pause, 20*time.Microsecond), time.Millisecond)
		time.Sleep(pause)
	}
	if k.mem[lockFlagOffset] != 0 {
		k.mem[lockTornOffset] = 1 // tell every holder, for good
		k.mem[lockFlagOffset] = 0
	}
	if k.mem[lockTornOffset] != 0 {
		k.unlock(false)
		return errTorn
	}
	k.mem[lockFlagOffset] = 1
	return nil
}

// unlock releases the lock. torn leaves the flag set: this process stops
// inside a frame it has begun to write, so the next holder must learn it.
func (k *frameLock) unlock(torn bool) {
	if !torn {
		k.mem[lockFlagOffset] = 0
	}
	lk := unix.Flock_t{Type: unix.F_UNLCK, Whence: 0, Start: lockFlagOffset, Len: 1}
	unix.FcntlFlock(k.f.Fd(), unix.F_SETLK, &lk)
}

// close unmaps and closes the lock file; the caller holds no lock.
func (k *frameLock) close() {
	unix.Munmap(k.mem)
	k.f.Close()
}

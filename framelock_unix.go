//go:build unix

package logsock

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The lock file: a memfd (on Linux; on other Unixes an unlinked temporary
// file) of lockFileSize bytes, shared by every process that holds the
// connection, mapped into each. Its layout is part of the inheritance
// contract (PROTOCOL.md):
//
//	byte 0   1 while a holder writes a frame: "frame in progress"
//	byte 1   1 once a holder has found byte 0 set when it took the lock:
//	         the holder before it died inside a frame, so the stream is
//	         torn for good, and every holder must stop using it
//	byte 4   1 while a process waits for the lock: "wanted"
//
// A holder takes a POSIX record lock (fcntl F_SETLK, F_WRLCK) on byte 0
// for each frame. POSIX locks exclude processes, not the threads of one
// (the frameLock's mutex does that), are released by the kernel when a
// holder dies, and are dropped when a process closes any descriptor of the
// file: so each process keeps exactly one frameLock for the file, and
// closes its other descriptors only through closeLockFile. OFD locks and
// flock do not work here: every holder shares one open file description.
//
// Two fcntl calls cost more than the send of a small frame (issue 5), so a
// holder keeps the record lock after a frame, "parked", with byte 0 clear:
// the stream is at a frame boundary. It lets go parkTime after it took the
// lock, busy or not. A process that waits for the lock sets byte 4, and
// polls; a holder that finds byte 4 set does not take the lock again until
// the waiter has had it (and cleared byte 4), or handoffWait has passed
// (the waiter may have given up): otherwise a busy holder, taking the lock
// again the moment it lets go, would starve every waiter.
const (
	lockFileSize     = 16
	lockFlagOffset   = 0
	lockTornOffset   = 1
	lockWantedOffset = 4
)

// parkTime is how long a holder keeps the record lock: long enough to
// spare the two fcntl calls on most frames of a busy writer, short enough
// that a waiter hardly notices. A frameLock's park, which tests change.
const parkTime = 200 * time.Microsecond

const (
	// handoffWait bounds how long a holder leaves the lock to a waiter.
	handoffWait = time.Millisecond
	// maxLockPause is the longest pause between a waiter's attempts: well
	// under handoffWait, so that the waiter looks while the lock is left
	// to it.
	maxLockPause = 200 * time.Microsecond
)

// errTorn is why a holder drops a shared connection whose stream another
// holder left torn.
var errTorn = errors.New("a process died while writing a frame on the shared connection: the stream is torn")

// frameLock is this process's handle on a lock file: one for each file,
// whichever LogSockets of the process share the connection (lockFiles).
// Its mutex is held from lock to unlock, so that it excludes the
// process's own writers, which the record lock cannot. The bytes of the
// mapping are written only under the record lock, whose fcntl calls order
// the memory accesses of the processes; byte 4 is only a hint, read and
// written without it.
type frameLock struct {
	key  fileKey
	refs int // LogSocket connections using it; guarded by lockFiles
	f    *os.File
	fd   int
	mem  []byte // the mapping of the lock file

	park time.Duration // parkTime

	mu     sync.Mutex // held by the writer of a frame; guards the fields below
	parked bool       // the record lock is held between frames
	armed  bool       // timer is set to end the parking
	timer  *time.Timer
	timers sync.WaitGroup // the timer's call in progress, joined by close
}

// lockFiles maps each lock file this process has open to its frameLock.
var lockFiles struct {
	sync.Mutex
	m map[fileKey]*frameLock
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

// openLock returns this process's frameLock for the lock file f, made by
// newLockFile here or in another process. If the process has the file
// open already (a connection passed between two LogSockets of one
// process), f is closed and the frameLock shared.
func openLock(f *os.File) (*frameLock, error) {
	fd := int(f.Fd()) // a regular file: Fd leaves it as it is
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("logsock: lock file: %w", os.NewSyscallError("fstat", err))
	}
	if st.Size < lockFileSize {
		f.Close()
		return nil, fmt.Errorf("logsock: lock file has %d bytes, want %d", st.Size, lockFileSize)
	}
	key := fileKey{uint64(st.Dev), uint64(st.Ino)}
	lockFiles.Lock()
	defer lockFiles.Unlock()
	if k := lockFiles.m[key]; k != nil {
		k.refs++
		k.closeFile(f)
		return k, nil
	}
	mem, err := unix.Mmap(fd, 0, lockFileSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("logsock: lock file: %w", os.NewSyscallError("mmap", err))
	}
	k := &frameLock{key: key, refs: 1, f: f, fd: fd, mem: mem, park: parkTime}
	k.timer = time.AfterFunc(time.Hour, k.endParking)
	k.timer.Stop()
	if lockFiles.m == nil {
		lockFiles.m = make(map[fileKey]*frameLock)
	}
	lockFiles.m[key] = k
	return k, nil
}

// dup returns a close-on-exec duplicate of the lock file's descriptor, to
// pass to another process. Close it with closeLockFile.
func (k *frameLock) dup() (*os.File, error) {
	nfd, err := unix.FcntlInt(uintptr(k.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("logsock: duplicating the lock file: %w", os.NewSyscallError("fcntl", err))
	}
	return os.NewFile(uintptr(nfd), "logsock-lock"), nil
}

// lock takes the lock, polling until deadline, or until abort is closed: a
// blocking F_SETLKW could wait forever on a holder that is stopped
// (SIGSTOP). Then it checks the stream: a set flag means that the last
// holder died inside a frame. It returns errTorn, with the lock released,
// if the stream is torn. On success the caller must call unlock.
//
// The caller's write role is held while it waits: the wait is part of
// its write, as a wait for room in the send buffer is.
func (k *frameLock) lock(deadline time.Time, abort <-chan struct{}) error {
	for pause, tries := time.Duration(0), 0; !k.mu.TryLock(); tries++ {
		// Another LogSocket of this process writes a frame, or the timer
		// lets go of the parked lock, which takes a microsecond: yield a
		// few times before sleeping, which takes tens.
		if tries < 50 {
			runtime.Gosched()
			continue
		}
		if err := lockWaitOver(deadline, abort); err != nil {
			return err
		}
		pause = min(max(2*pause, 20*time.Microsecond), time.Millisecond)
		time.Sleep(pause)
	}
	if k.parked {
		// Still ours since the last frame: nobody can have written.
		k.parked = false
		k.mem[lockFlagOffset] = 1
		return nil
	}
	// Another process waits: leave the lock to it, for a while.
	for end := time.Now().Add(handoffWait); k.mem[lockWantedOffset] != 0; {
		if now := time.Now(); !now.Before(end) || !now.Before(deadline) {
			break
		}
		time.Sleep(20 * time.Microsecond)
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: lockFlagOffset, Len: 1}
	for pause := time.Duration(0); ; {
		err := unix.FcntlFlock(uintptr(k.fd), unix.F_SETLK, &lk)
		if err == nil {
			break
		}
		if err != unix.EAGAIN && err != unix.EACCES && err != unix.EINTR {
			k.mu.Unlock()
			return os.NewSyscallError("fcntl F_SETLK", err)
		}
		if err := lockWaitOver(deadline, abort); err != nil {
			k.mu.Unlock()
			return err
		}
		// Another process writes a frame (that takes microseconds, or as
		// long as its write waits for room), or has parked the lock: ask
		// for it.
		k.mem[lockWantedOffset] = 1
		pause = min(max(2*pause, 20*time.Microsecond), maxLockPause)
		time.Sleep(pause)
	}
	k.mem[lockWantedOffset] = 0 // served; another waiter sets it again
	if k.mem[lockFlagOffset] != 0 {
		k.mem[lockTornOffset] = 1 // tell every holder, for good
		k.mem[lockFlagOffset] = 0
	}
	if k.mem[lockTornOffset] != 0 {
		k.release()
		k.mu.Unlock()
		return errTorn
	}
	k.mem[lockFlagOffset] = 1
	return nil
}

// errLockAborted is why a wait for the frame lock ends when Close's time
// is up.
var errLockAborted = errors.New("logsock: waiting for the frame lock: closed")

// lockWaitOver returns why a wait for the lock must end, or nil.
func lockWaitOver(deadline time.Time, abort <-chan struct{}) error {
	select {
	case <-abort:
		return errLockAborted
	default:
	}
	if !time.Now().Before(deadline) {
		return fmt.Errorf("logsock: waiting for the frame lock: %w", os.ErrDeadlineExceeded)
	}
	return nil
}

// unlock ends a frame. torn leaves the flag set and releases the record
// lock: this process stops inside a frame it has begun to write, so the
// next holder must learn it. Otherwise the lock is parked, until parkTime
// after it was taken.
func (k *frameLock) unlock(torn bool) {
	defer k.mu.Unlock()
	if torn {
		k.release()
		return
	}
	k.mem[lockFlagOffset] = 0
	k.parked = true
	if !k.armed {
		k.armed = true
		k.timers.Add(1)
		k.timer.Reset(k.park)
	}
}

// endParking is the timer's call: it lets go of a parked lock. If a frame
// is being written, it comes back later rather than wait, which would
// only make the writer's next lock wait for it.
func (k *frameLock) endParking() {
	defer k.timers.Done()
	if !k.mu.TryLock() {
		k.timers.Add(1) // still armed
		k.timer.Reset(k.park)
		return
	}
	defer k.mu.Unlock()
	k.armed = false
	k.unpark()
}

// unpark lets go of the record lock if it is parked; k.mu is held.
func (k *frameLock) unpark() {
	if k.parked {
		k.parked = false
		k.release()
	}
}

// release unlocks the record lock; k.mu is held.
func (k *frameLock) release() {
	lk := unix.Flock_t{Type: unix.F_UNLCK, Whence: 0, Start: lockFlagOffset, Len: 1}
	unix.FcntlFlock(uintptr(k.fd), unix.F_SETLK, &lk)
}

// closeFile closes another descriptor of the lock file, which drops this
// process's record lock: so first it waits for the frame in progress, and
// lets go of a parked lock.
func (k *frameLock) closeFile(f *os.File) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.unpark()
	f.Close()
}

// closeLockFile closes f, which may be a descriptor of a lock file that
// this process holds as a frameLock (see closeFile). It never calls Fd,
// which would make a socket's shared description blocking.
func closeLockFile(f *os.File) {
	lockFiles.Lock()
	defer lockFiles.Unlock()
	var st unix.Stat_t
	var serr error
	if rc, err := f.SyscallConn(); err == nil {
		if rc.Control(func(fd uintptr) { serr = unix.Fstat(int(fd), &st) }) == nil && serr == nil {
			if k := lockFiles.m[fileKey{uint64(st.Dev), uint64(st.Ino)}]; k != nil {
				k.closeFile(f)
				return
			}
		}
	}
	f.Close()
}

// closeLockFiles closes files, the copies that share made, as
// closeLockFile does.
func closeLockFiles(files []*os.File) {
	for _, f := range files {
		closeLockFile(f)
	}
}

// closeLockFD is closeLockFile for a bare descriptor.
func closeLockFD(fd int) {
	closeLockFile(os.NewFile(uintptr(fd), "logsock-lock"))
}

// close drops one use of the frameLock; the last unmaps and closes the
// lock file. The caller holds no lock. lockFiles stays locked until the
// descriptor is closed: a frameLock opened for the file meanwhile would
// lose its record lock to that close.
func (k *frameLock) close() {
	lockFiles.Lock()
	defer lockFiles.Unlock()
	if k.refs--; k.refs > 0 {
		return
	}
	delete(lockFiles.m, k.key)
	k.mu.Lock()
	k.unpark()
	if k.armed && k.timer.Stop() {
		k.armed = false
		k.timers.Done()
	}
	k.mu.Unlock()
	k.timers.Wait() // a call that had begun
	unix.Munmap(k.mem)
	k.f.Close()
}

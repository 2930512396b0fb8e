//go:build unix

package logsock

// Sharing a connection with another process, on Unix: the descriptors
// that Start and SendConn pass, and FromEnv and ReceiveConn adopt.

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// share readies the current connection to be shared: its handshake
// written, a lock file made. Frames held stay held: each process's frames
// keep their own order, and none is promised across processes. It returns
// copies of the descriptors, close-on-exec (exec.Cmd makes its own
// inheritable copies), and the environment for a child that numbers them
// from fd; no descriptors if there is no connection, and none can be made
// now.
func (l *LogSocket) share(fd int) ([]*os.File, []string, error) {
	if l.closed.Load() {
		return nil, nil, ErrClosed
	}
	if l.cfg.Framing != LengthPrefixed { // the contract tells a child logsock's framing only
		return nil, nil, errors.New("logsock: only a LengthPrefixed connection can be shared")
	}
	if l.cfg.TLS != nil { // a child cannot continue this process's TLS session
		return nil, nil, errors.New("logsock: a TLS connection cannot be shared")
	}
	env := []string{EnvNetwork + "=" + l.link.network, EnvAddress + "=" + l.link.address, EnvOrder + "=" + l.cfg.Order.String()}
	// A connection to pass, made now if none is up and an attempt is due,
	// before taking the write role: nobody dials holding it.
	if l.link.current() == nil {
		l.link.connect(l.link.ctx)
	}
	release := l.s.exclusive()
	defer release()
	c := l.link.current()
	if c == nil || l.link.greet(c, time.Time{}) != nil {
		return nil, env, nil // the child makes its own connection
	}
	sock, lock, id, err := l.link.share(c)
	if err != nil {
		return nil, nil, err
	}
	env = append(env, EnvFD+"="+strconv.Itoa(fd), EnvSocket+"="+id, EnvLockFD+"="+strconv.Itoa(fd+1))
	return []*os.File{sock, lock}, env, nil
}

// share readies c, its handshake written, to be shared with another
// process: a lock file made. It returns copies of the socket and the lock
// file, close-on-exec, and the socket's identity.
func (k *link) share(c *conn) (sock, lock *os.File, id string, err error) {
	if c.lock == nil {
		if c.lock, err = newLockFile(); err != nil {
			return nil, nil, "", err
		}
	}
	if sock, id, err = dupSocket(c.rc); err != nil {
		return nil, nil, "", err
	}
	if lock, err = c.lock.dup(); err != nil {
		sock.Close()
		return nil, nil, "", err
	}
	return sock, lock, id, nil
}

// dupSocket duplicates the socket with F_DUPFD_CLOEXEC and returns the
// copy and its identity. It goes through Control, never File or Fd, which
// would make the description that every holder of the socket shares
// blocking: os.StartProcess calls Fd on ExtraFiles, and O_NONBLOCK
// belongs to the description, so the parent's deadlines would stop
// working.
func dupSocket(rc syscall.RawConn) (*os.File, string, error) {
	var nfd int
	var id string
	var derr error
	err := rc.Control(func(fd uintptr) {
		if nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0); derr != nil {
			return
		}
		var st unix.Stat_t
		if derr = unix.Fstat(nfd, &st); derr != nil {
			unix.Close(nfd)
			return
		}
		id = fileID(&st)
	})
	if err == nil {
		err = derr
	}
	if err != nil {
		return nil, "", fmt.Errorf("logsock: duplicating the socket: %w", err)
	}
	return os.NewFile(uintptr(nfd), "logsock-socket"), id, nil
}

func fileID(st *unix.Stat_t) string {
	return fmt.Sprintf("%d:%d", uint64(st.Dev), uint64(st.Ino))
}

// adopt returns a connection on the socket fd, shared under the lock file
// lockFD. On success, the inherited descriptors are closed, and only
// close-on-exec duplicates are used.
func adopt(fd, lockFD int, network, id string) (*conn, error) {
	if err := checkSocket(fd, network, id); err != nil {
		return nil, err
	}
	if err := checkLockFile(lockFD); err != nil {
		return nil, err
	}
	unix.CloseOnExec(fd)
	unix.CloseOnExec(lockFD)
	nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("logsock: adopting fd %d: %w", fd, err)
	}
	// net.FileConn sets TCP_NODELAY, as Go does on every TCP connection;
	// but the option belongs to the socket, which every holder shares:
	// keep what the process that made it chose (a Python parent, for
	// one, leaves Nagle's algorithm on).
	nodelay, nerr := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY)
	f := os.NewFile(uintptr(nfd), "logsock-socket")
	nc, err := net.FileConn(f) // makes its own close-on-exec duplicate
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("logsock: adopting fd %d: %w", fd, err)
	}
	if tc, ok := nc.(*net.TCPConn); ok && nerr == nil && nodelay == 0 {
		if err := tc.SetNoDelay(false); err != nil {
			nc.Close()
			return nil, fmt.Errorf("logsock: adopting fd %d: %w", fd, err)
		}
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		nc.Close()
		return nil, fmt.Errorf("logsock: adopting fd %d: %T is not a socket: %w", fd, nc, ErrStaleFD)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		nc.Close()
		return nil, err
	}
	nlock, err := unix.FcntlInt(uintptr(lockFD), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("logsock: adopting lock fd %d: %w", lockFD, err)
	}
	k, err := openLock(os.NewFile(uintptr(nlock), "logsock-lock"))
	if err != nil {
		nc.Close()
		return nil, err
	}
	unix.Close(fd)
	closeLockFD(lockFD)
	return &conn{nc: nc, rc: rc, lock: k}, nil
}

// closeInherited closes the descriptors of a connection that could not
// be adopted: the socket and the lock file.
func closeInherited(fds [2]int) {
	unix.Close(fds[0])
	closeLockFD(fds[1])
}

// checkSocket verifies that fd is an open stream socket of network whose
// identity is id: descriptor numbers go stale.
func checkSocket(fd int, network, id string) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("logsock: fd %d: %w: %w", fd, ErrStaleFD, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return fmt.Errorf("logsock: fd %d is not a socket: %w", fd, ErrStaleFD)
	}
	if got := fileID(&st); got != id {
		return fmt.Errorf("logsock: fd %d is socket %s, want %s: %w", fd, got, id, ErrStaleFD)
	}
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil || typ != unix.SOCK_STREAM {
		return fmt.Errorf("logsock: fd %d is not a stream socket: %w", fd, ErrStaleFD)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fmt.Errorf("logsock: fd %d: %w: %w", fd, ErrStaleFD, err)
	}
	var ok bool
	switch sa.(type) {
	case *unix.SockaddrUnix:
		ok = network == "unix"
	case *unix.SockaddrInet4:
		ok = network == "tcp" || network == "tcp4"
	case *unix.SockaddrInet6:
		ok = network == "tcp" || network == "tcp6"
	}
	if !ok {
		return fmt.Errorf("logsock: fd %d is a %T socket, not %s: %w", fd, sa, network, ErrStaleFD)
	}
	return nil
}

func checkLockFile(fd int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("logsock: lock fd %d: %w: %w", fd, ErrStaleFD, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size < lockFileSize {
		return fmt.Errorf("logsock: lock fd %d is not a lock file: %w", fd, ErrStaleFD)
	}
	return nil
}

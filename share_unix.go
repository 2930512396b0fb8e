//go:build unix

package logsock

// Sharing a connection with another process, on Unix: the descriptors
// that Start and SendConn pass, and FromEnv and ReceiveConn adopt.

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
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
	if l.q.f.octets { // the contract tells a child logsock's framing only
		return nil, nil, errors.New("logsock: a syslog LogSocket (NewSyslog) cannot be shared")
	}
	if l.cfg.TLS != nil { // a child cannot continue this process's TLS session
		return nil, nil, errors.New("logsock: a TLS connection cannot be shared")
	}
	env := []string{envNetwork + "=" + l.link.network, envAddress + "=" + l.link.address, envOrder + "=" + l.cfg.Order.String()}
	if l.cfg.Acks { // the child connects on its own, with its own session
		return nil, append(env, envAcks+"=1", envTag+"="+l.link.session.tag), nil
	}
	// A connection to pass, made now if none is up and an attempt is due,
	// before taking the write role: nobody dials holding it.
	if l.link.current() == nil {
		l.link.connect(l.link.ctx)
	}
	l.link.role.Lock()
	defer l.link.role.Unlock()
	c := l.link.current()
	if c == nil || l.link.greet(c, time.Time{}) != nil {
		return nil, env, nil // the child makes its own connection
	}
	sock, lock, id, err := l.link.share(c)
	if err != nil {
		return nil, nil, err
	}
	env = append(env, envFD+"="+strconv.Itoa(fd), envSocket+"="+id, envLockFD+"="+strconv.Itoa(fd+1))
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
		id = statKey(&st).String()
	})
	if err == nil {
		err = derr
	}
	if err != nil {
		return nil, "", fmt.Errorf("logsock: duplicating the socket: %w", err)
	}
	return os.NewFile(uintptr(nfd), "logsock-socket"), id, nil
}

func statKey(st *unix.Stat_t) fileKey {
	return fileKey{uint64(st.Dev), uint64(st.Ino)}
}

// adoptEnv adopts the descriptors that the environment names (FromEnv).
// Each is this process's to close only once it passes its check: one
// that fails is another file of this process's (one it opened itself, or
// a number reused), left open, and as it was (issue 17).
func adoptEnv(ct *contract, vars map[string]string) (*conn, error) {
	if err := checkSocket(ct.fd, ct.network, ct.id); err != nil {
		return nil, &EnvError{Var: envFD, Value: vars[envFD], Err: err}
	}
	if err := checkLockFile(ct.lockFD); err != nil {
		// The socket is the one the parent passed: ours. Closed, not
		// left open: a copy that nobody writes on would keep the
		// collector's connection up after its last writer had gone.
		unix.Close(ct.fd)
		return nil, &EnvError{Var: envLockFD, Value: vars[envLockFD], Err: err}
	}
	return adopt(ct.fd, ct.lockFD, ct.network)
}

// checkInherited checks that fd is the socket meant and lockFD a lock
// file, as adoptEnv does, for ReceiveConn.
func checkInherited(fd, lockFD int, network string, id fileKey) error {
	if err := checkSocket(fd, network, id); err != nil {
		return err
	}
	return checkLockFile(lockFD)
}

// adopt returns a connection on the socket fd, shared under the lock file
// lockFD, both checked. It owns them: it closes them, on failure too, and
// uses only close-on-exec duplicates.
func adopt(fd, lockFD int, network string) (*conn, error) {
	defer closeInherited(fd, lockFD)
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
	return &conn{nc: nc, rc: rc, lock: k}, nil
}

// closeInherited closes an inherited socket and lock file, which this
// process owns: checked (FromEnv), or made by its own recvmsg
// (ReceiveConn).
func closeInherited(fd, lockFD int) {
	unix.Close(fd)
	closeLockFD(lockFD)
}

// checkSocket verifies that fd is an open stream socket of network whose
// identity is id: descriptor numbers go stale. It only looks: fstat,
// getsockopt, getsockname.
func checkSocket(fd int, network string, id fileKey) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("fd %d: %w: %w", fd, ErrStaleFD, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return fmt.Errorf("fd %d is not a socket: %w", fd, ErrStaleFD)
	}
	if got := statKey(&st); got != id {
		return fmt.Errorf("fd %d is socket %v, want %v: %w", fd, got, id, ErrStaleFD)
	}
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil || typ != unix.SOCK_STREAM {
		return fmt.Errorf("fd %d is not a stream socket: %w", fd, ErrStaleFD)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fmt.Errorf("fd %d: %w: %w", fd, ErrStaleFD, err)
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
		return fmt.Errorf("fd %d is a %T socket, not %s: %w", fd, sa, network, ErrStaleFD)
	}
	return nil
}

// checkLockFile verifies that fd is a lock file: a regular file of
// lockFileSize bytes or more. It only looks.
func checkLockFile(fd int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("lock fd %d: %w: %w", fd, ErrStaleFD, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size < lockFileSize {
		return fmt.Errorf("lock fd %d is not a lock file: %w", fd, ErrStaleFD)
	}
	return nil
}

// SendConn passes the connection on uc (SCM_RIGHTS) to share it.
func (l *LogSocket) SendConn(uc *net.UnixConn) error {
	if l.cfg.Acks {
		return errors.New("logsock: SendConn: a connection with acknowledgements (Config.Acks) cannot be shared")
	}
	files, env, err := l.share(0)
	if err != nil {
		return err
	}
	defer closeLockFiles(files)
	if len(files) == 0 {
		return fmt.Errorf("logsock: SendConn: no connection to send: %w", l.link.lastError())
	}
	// The numbers through Control, not Fd, which would make the socket's
	// shared description blocking.
	var werr error
	err = control(files[0], func(sock int) error {
		return control(files[1], func(lock int) error {
			_, _, werr = uc.WriteMsgUnix([]byte(strings.Join(env, "\x00")), unix.UnixRights(sock, lock), nil)
			return nil
		})
	})
	if err = errors.Join(err, werr); err != nil {
		return fmt.Errorf("logsock: SendConn: %w", err)
	}
	return nil
}

// control calls fn with f's descriptor, through f's RawConn.
func control(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// ReceiveConn adopts a connection sent with SendConn, as FromEnv does.
func ReceiveConn(uc *net.UnixConn, cfg *Config) (*LogSocket, error) {
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4*4)) // room for more than the 2 fds we expect, to see extras
	n, oobn, flags, _, err := uc.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, fmt.Errorf("logsock: ReceiveConn: %w", err)
	}
	fds, err := parseRights(oob[:oobn])
	if err != nil {
		return nil, err
	}
	closeAll := func(fds []int) {
		for _, fd := range fds {
			closeLockFD(fd) // any of them may be a lock file this process holds
		}
	}
	if flags&unix.MSG_CTRUNC != 0 {
		closeAll(fds)
		return nil, errors.New("logsock: ReceiveConn: control message truncated (MSG_CTRUNC): descriptors were lost")
	}
	if len(fds) < 2 {
		closeAll(fds)
		return nil, fmt.Errorf("logsock: ReceiveConn: got %d descriptors, want 2", len(fds))
	}
	closeAll(fds[2:])
	vars := map[string]string{}
	for kv := range bytes.SplitSeq(buf[:n], []byte{0}) {
		k, v, _ := strings.Cut(string(kv), "=")
		vars[k] = v
	}
	l, err := receive(vars, fds[0], fds[1], cfg)
	if err != nil {
		return nil, fmt.Errorf("logsock: ReceiveConn: %w", err)
	}
	return l, nil
}

// receive returns a LogSocket on the socket fd, shared under the lock
// file lockFD, that vars describe. The descriptors are this process's,
// made by its own recvmsg: on failure it closes them, or they would leak.
// The message's envFD and envLockFD name the sender's numbers, which mean
// nothing here.
func receive(vars map[string]string, fd, lockFD int, cfg *Config) (*LogSocket, error) {
	ct, err := parseContract(vars, false)
	var c Config
	if err == nil {
		c, err = ct.config(cfg)
	}
	if err == nil {
		err = checkInherited(fd, lockFD, ct.network, ct.id)
	}
	if err != nil {
		closeInherited(fd, lockFD)
		return nil, err
	}
	conn, err := adopt(fd, lockFD, ct.network)
	if err != nil {
		return nil, err
	}
	return newLogSocket(ct.network, ct.address, &c, conn, false), nil
}

// parseRights returns the descriptors of the SCM_RIGHTS messages in oob,
// closing those of any other kind of message that carries them.
func parseRights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("logsock: ReceiveConn: %w", err)
	}
	var fds []int
	for _, m := range msgs {
		got, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue // not SCM_RIGHTS: it carries no descriptor
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

package logsock

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The environment variables by which a child process learns of the
// connection it inherits (see the package documentation for the contract).
const (
	EnvNetwork = "LOGSOCK_NETWORK" // the collector's network: tcp, tcp4, tcp6 or unix
	EnvAddress = "LOGSOCK_ADDRESS" // the collector's address, for the child's own reconnects
	EnvOrder   = "LOGSOCK_ORDER"   // the byte order: little or big
	EnvFD      = "LOGSOCK_FD"      // the inherited socket's descriptor number
	EnvSocket  = "LOGSOCK_SOCKET"  // the socket's identity, "dev:ino" as fstat reports them
	EnvLockFD  = "LOGSOCK_LOCK_FD" // the lock file's descriptor number
)

var envVars = []string{EnvNetwork, EnvAddress, EnvOrder, EnvFD, EnvSocket, EnvLockFD}

var (
	// ErrNotInherited is returned by FromEnv when the environment names no
	// collector: the process was not started by Start.
	ErrNotInherited = errors.New("logsock: no inherited connection in the environment")
	// ErrStaleFD is wrapped by FromEnv's and ReceiveConn's error when a
	// descriptor is not the one its parent meant: closed, reused for
	// another file, or not a stream socket of the named network.
	ErrStaleFD = errors.New("logsock: descriptor is not the connection meant")
)

// Start starts cmd with the connection: the child inherits it, adopts it
// with FromEnv, and logs on it without a handshake of its own, so that the
// collector attributes its frames to this process's handshake, as after a
// fork. Each frame on the shared connection is then written under a lock
// shared with the child, so that the frames of the processes never tear
// each other. If the connection breaks, parent and child each reconnect on
// their own, each with a handshake that names its own pid.
//
// Start adds the socket and the lock file to cmd.ExtraFiles, and the
// variables of the contract to cmd.Env (os.Environ() if it is nil), then
// starts cmd and closes its own copies of the descriptors. If there is no
// connection and none can be made now, the child gets only the collector's
// address, and connects by itself.
func (l *LogSocket) Start(cmd *exec.Cmd) error {
	files, env, err := l.share(3 + len(cmd.ExtraFiles))
	if err != nil {
		return err
	}
	defer closeLockFiles(files)
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, env...) // the last of duplicate keys wins
	cmd.ExtraFiles = append(cmd.ExtraFiles, files...)
	return cmd.Start()
}

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

// FromEnv adopts the connection that the parent process passed with Start,
// and returns a LogSocket that writes on it, under the shared lock, without
// a handshake of its own. It checks that the descriptor is the socket meant
// (a stream socket of the named network, with the recorded identity), makes
// it close-on-exec, so that it does not leak into this process's own
// children, and removes the variables from the environment. A nil cfg means
// defaults; the byte order is the parent's.
//
// If the parent had no connection to pass, FromEnv returns a LogSocket
// that connects when it first needs to, as New does. If the environment
// names no collector, it returns ErrNotInherited.
func FromEnv(cfg *Config) (*LogSocket, error) {
	vars := make(map[string]string, len(envVars))
	for _, k := range envVars {
		vars[k] = os.Getenv(k)
		os.Unsetenv(k)
	}
	if vars[EnvNetwork] == "" {
		return nil, ErrNotInherited
	}
	var fds [2]int // the socket and the lock file; -1: none
	fds[0], fds[1] = -1, -1
	if vars[EnvFD] != "" {
		fd, err1 := strconv.Atoi(vars[EnvFD])
		lockFD, err2 := strconv.Atoi(vars[EnvLockFD])
		if err := errors.Join(err1, err2); err != nil || fd < 0 || lockFD < 0 {
			return nil, fmt.Errorf("logsock: %s=%q, %s=%q: %w", EnvFD, vars[EnvFD], EnvLockFD, vars[EnvLockFD], ErrStaleFD)
		}
		fds = [2]int{fd, lockFD}
	}
	return inherit(vars, fds, cfg)
}

// inherit returns a LogSocket on the connection that vars and fds
// describe (fds[0] -1: none), as FromEnv and ReceiveConn make it. It
// takes ownership of the descriptors: on failure it closes them. The
// connection is adopted before the LogSocket is made, so that nothing is
// left to stop when adopting fails (issue 11: the batching writer leaked).
func inherit(vars map[string]string, fds [2]int, cfg *Config) (l *LogSocket, err error) {
	defer func() {
		if err != nil && fds[0] >= 0 {
			unix.Close(fds[0])
			closeLockFD(fds[1])
		}
	}()
	var c Config
	if cfg != nil {
		c = *cfg
	}
	if err := c.Order.UnmarshalText([]byte(vars[EnvOrder])); err != nil {
		return nil, fmt.Errorf("logsock: %s: %w", EnvOrder, err)
	}
	network := vars[EnvNetwork]
	if c, err = checkConfig(network, &c); err != nil {
		return nil, err
	}
	var conn *conn
	if fds[0] >= 0 {
		if conn, err = adopt(fds[0], fds[1], network, vars[EnvSocket]); err != nil {
			return nil, err
		}
	}
	return newLogSocket(network, vars[EnvAddress], &c, conn), nil
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

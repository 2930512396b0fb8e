package logsock

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
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
//
// On Windows, whose sockets are handles that exec.Cmd does not pass, Start
// returns an error wrapping errors.ErrUnsupported, and does not start cmd.
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
// names no collector, it returns ErrNotInherited. On Windows, which
// inherits no descriptors, an environment that names one (EnvFD) gets an
// error wrapping errors.ErrUnsupported.
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
			closeInherited(fds)
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

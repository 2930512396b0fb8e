package logsock

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
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

// fileKey is a file's identity: the device and inode that fstat reports.
type fileKey struct{ dev, ino uint64 }

// String returns "dev:ino", the form of EnvSocket.
func (k fileKey) String() string { return fmt.Sprintf("%d:%d", k.dev, k.ino) }

var envVars = []string{EnvNetwork, EnvAddress, EnvOrder, EnvFD, EnvSocket, EnvLockFD}

var (
	// ErrNotInherited is returned by FromEnv when the environment sets no
	// variable of the contract: the process was not started by Start.
	ErrNotInherited = errors.New("logsock: no inherited connection in the environment")
	// ErrStaleFD is wrapped by FromEnv's and ReceiveConn's error when a
	// descriptor is not the one its parent meant: closed, reused for
	// another file, or not a stream socket of the named network; and when
	// EnvFD, EnvLockFD or EnvSocket, which describe the descriptors, are
	// malformed or missing.
	ErrStaleFD = errors.New("logsock: descriptor is not the connection meant")
)

// EnvError is the error of FromEnv and ReceiveConn for a variable of the
// inheritance contract, from the environment or from SendConn's message,
// that is missing, malformed, or names a descriptor that fails its check.
// Err wraps ErrStaleFD when the variable is EnvFD, EnvLockFD or EnvSocket.
type EnvError struct {
	Var   string // the variable: EnvNetwork, EnvAddress, ...
	Value string // its value; empty if it is unset
	Err   error  // what is wrong with it
}

// Error reads "logsock: VAR="VALUE": WHAT".
func (e *EnvError) Error() string {
	return fmt.Sprintf("logsock: %s=%q: %v", e.Var, e.Value, e.Err)
}

// Unwrap returns e.Err.
func (e *EnvError) Unwrap() error { return e.Err }

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
// FromEnv closes no descriptor that it has not adopted (issue 17): it
// checks every variable, and cfg, before it touches a descriptor, and a
// descriptor that fails its check (another file of this process's, or a
// number reused) is left open as it was. Its error is an *EnvError that
// names the variable, wrapping ErrStaleFD for a descriptor. It removes the
// variables on failure too: they describe what this process inherited,
// and must reach none of its children.
//
// If the parent had no connection to pass, FromEnv returns a LogSocket
// that connects when it first needs to, as New does. If the environment
// sets none of the variables, it returns ErrNotInherited. On Windows,
// which inherits no descriptors, an environment that names one (EnvFD)
// gets an error wrapping errors.ErrUnsupported.
func FromEnv(cfg *Config) (*LogSocket, error) {
	vars := make(map[string]string, len(envVars))
	set := false
	for _, k := range envVars {
		vars[k] = os.Getenv(k)
		set = set || vars[k] != ""
		os.Unsetenv(k)
	}
	if !set {
		return nil, ErrNotInherited
	}
	ct, err := parseContract(vars, true)
	if err != nil {
		return nil, err
	}
	c, err := ct.config(cfg)
	if err != nil {
		return nil, err
	}
	// Adopted before the LogSocket is made, so that nothing is left to
	// stop when adopting fails (issue 11: the batching writer leaked).
	var conn *conn
	if ct.fd >= 0 {
		if conn, err = adoptEnv(&ct, vars); err != nil {
			return nil, err
		}
	}
	return newLogSocket(ct.network, ct.address, &c, conn, false), nil
}

// contract is what the variables of the inheritance contract say.
type contract struct {
	network, address string
	order            ByteOrder
	fd, lockFD       int     // the descriptors named (FromEnv); -1: none
	id               fileKey // the socket's identity, if there is a socket
}

// parseContract checks every variable of vars, and returns what they say,
// or an *EnvError that names the first bad one. withFDs reads EnvFD and
// EnvLockFD, which FromEnv needs and ReceiveConn, whose descriptors come
// in the message, ignores; the socket's identity is then required.
func parseContract(vars map[string]string, withFDs bool) (contract, error) {
	ct := contract{network: vars[EnvNetwork], address: vars[EnvAddress], fd: -1, lockFD: -1}
	bad := func(k string, err error) (contract, error) {
		return contract{}, &EnvError{Var: k, Value: vars[k], Err: err}
	}
	if err := checkNetwork(ct.network); err != nil {
		return bad(EnvNetwork, err)
	}
	if err := checkAddress(ct.network, ct.address, false); err != nil {
		return bad(EnvAddress, err)
	}
	// An empty order is an error, not the default: the order is the
	// collector's, and a wrong guess makes every length on the stream a
	// protocol error, which ends a shared connection for every holder.
	switch vars[EnvOrder] {
	case "little":
		ct.order = LittleEndian
	case "big":
		ct.order = BigEndian
	default:
		return bad(EnvOrder, errors.New("want little or big"))
	}
	fdVar, lockVar, idVar := vars[EnvFD], vars[EnvLockFD], vars[EnvSocket]
	if withFDs {
		switch {
		case fdVar == "" && lockVar == "" && idVar == "":
			return ct, nil // the parent had no connection to pass
		case fdVar == "" && lockVar != "":
			return bad(EnvFD, fmt.Errorf("empty, but %s is set: %w", EnvLockFD, ErrStaleFD))
		case fdVar == "":
			return bad(EnvFD, fmt.Errorf("empty, but %s is set: %w", EnvSocket, ErrStaleFD))
		}
		var ok bool
		if ct.fd, ok = parseFD(fdVar); !ok {
			return bad(EnvFD, fmt.Errorf("want a descriptor number: %w", ErrStaleFD))
		}
		if lockVar == "" {
			return bad(EnvLockFD, fmt.Errorf("empty, but %s is set: %w", EnvFD, ErrStaleFD))
		}
		if ct.lockFD, ok = parseFD(lockVar); !ok {
			return bad(EnvLockFD, fmt.Errorf("want a descriptor number: %w", ErrStaleFD))
		}
		if ct.lockFD == ct.fd {
			return bad(EnvLockFD, fmt.Errorf("the descriptor of %s: %w", EnvFD, ErrStaleFD))
		}
	}
	dev, ino, _ := strings.Cut(idVar, ":")
	d, err1 := strconv.ParseUint(dev, 10, 64)
	i, err2 := strconv.ParseUint(ino, 10, 64)
	if err1 != nil || err2 != nil {
		return bad(EnvSocket, fmt.Errorf(`want "dev:ino", two decimal numbers: %w`, ErrStaleFD))
	}
	ct.id = fileKey{d, i}
	return ct, nil
}

// parseFD parses a descriptor number: decimal digits, no sign.
func parseFD(s string) (int, bool) {
	n, err := strconv.ParseUint(s, 10, 31) // ParseUint takes no sign
	return int(n), err == nil
}

// config returns cfg checked, with the contract's byte order: the
// parent's, which its collector reads.
func (ct *contract) config(cfg *Config) (Config, error) {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	c.Order = ct.order
	return checkConfig(ct.network, ct.address, &c)
}

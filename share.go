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
// connection it inherits (PROTOCOL.md has the contract).
const (
	envNetwork = "LOGSOCK_NETWORK" // the collector's network: tcp, tcp4, tcp6 or unix
	envAddress = "LOGSOCK_ADDRESS" // the collector's address, for the child's own reconnects
	envOrder   = "LOGSOCK_ORDER"   // the byte order: little or big
	envFD      = "LOGSOCK_FD"      // the inherited socket's descriptor number
	envSocket  = "LOGSOCK_SOCKET"  // the socket's identity, "dev:ino" as fstat reports them
	envLockFD  = "LOGSOCK_LOCK_FD" // the lock file's descriptor number
	envAcks    = "LOGSOCK_ACKS"    // "1": the child connects on its own, with protocol v2 (Config.Acks)
	envTag     = "LOGSOCK_TAG"     // with LOGSOCK_ACKS, the parent's tag, the child's unless its Config names one
)

// fileKey is a file's identity: the device and inode that fstat reports.
type fileKey struct{ dev, ino uint64 }

// String returns "dev:ino", the form of envSocket.
func (k fileKey) String() string { return fmt.Sprintf("%d:%d", k.dev, k.ino) }

var envVars = []string{envNetwork, envAddress, envOrder, envFD, envSocket, envLockFD, envAcks, envTag}

// EnvError is the error of a variable of the contract (PROTOCOL.md); Err wraps
// ErrStaleFD for a descriptor.
type EnvError struct {
	Var   string // the variable: LOGSOCK_NETWORK, LOGSOCK_ADDRESS, ...
	Value string // its value; empty if it is unset
	Err   error  // what is wrong with it
}

// Error reads "logsock: VAR="VALUE": WHAT".
func (e *EnvError) Error() string {
	return fmt.Sprintf("logsock: %s=%q: %v", e.Var, e.Value, e.Err)
}

// Unwrap returns e.Err.
func (e *EnvError) Unwrap() error { return e.Err }

// Start starts cmd sharing the connection, as after a fork: the child adopts
// it with FromEnv (with none up, or Acks, it connects).
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

// FromEnv adopts the connection passed with Start, checking each variable and
// descriptor first (*EnvError), and unsets the variables.
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
	acks             bool    // protocol v2: no socket is passed
	tag              string
}

// parseContract checks every variable of vars, and returns what they say,
// or an *EnvError that names the first bad one. withFDs reads envFD and
// envLockFD, which FromEnv needs and ReceiveConn, whose descriptors come
// in the message, ignores; the socket's identity is then required.
func parseContract(vars map[string]string, withFDs bool) (contract, error) {
	ct := contract{network: vars[envNetwork], address: vars[envAddress], fd: -1, lockFD: -1}
	bad := func(k string, err error) (contract, error) {
		return contract{}, &EnvError{Var: k, Value: vars[k], Err: err}
	}
	if err := checkNetwork(ct.network); err != nil {
		return bad(envNetwork, err)
	}
	if err := checkAddress(ct.network, ct.address, false); err != nil {
		return bad(envAddress, err)
	}
	// An empty order is an error, not the default: the order is the
	// collector's, and a wrong guess makes every length on the stream a
	// protocol error, which ends a shared connection for every holder.
	switch vars[envOrder] {
	case "little":
		ct.order = LittleEndian
	case "big":
		ct.order = BigEndian
	default:
		return bad(envOrder, errors.New("want little or big"))
	}
	fdVar, lockVar, idVar := vars[envFD], vars[envLockFD], vars[envSocket]
	switch vars[envAcks] {
	case "":
		if vars[envTag] != "" {
			return bad(envTag, fmt.Errorf("set without %s=1", envAcks))
		}
	case "1":
		if !withFDs {
			return bad(envAcks, errors.New("a connection with acknowledgements is never passed"))
		}
		if fdVar != "" || lockVar != "" || idVar != "" {
			return bad(envAcks, fmt.Errorf("a connection with acknowledgements is never shared, but %s is set", envFD))
		}
		if err := checkTag(vars[envTag]); err != nil {
			return bad(envTag, err)
		}
		ct.acks, ct.tag = true, vars[envTag]
		return ct, nil
	default:
		return bad(envAcks, errors.New(`want "1" or nothing`))
	}
	if withFDs {
		switch {
		case fdVar == "" && lockVar == "" && idVar == "":
			return ct, nil // the parent had no connection to pass
		case fdVar == "" && lockVar != "":
			return bad(envFD, fmt.Errorf("empty, but %s is set: %w", envLockFD, ErrStaleFD))
		case fdVar == "":
			return bad(envFD, fmt.Errorf("empty, but %s is set: %w", envSocket, ErrStaleFD))
		}
		var ok bool
		if ct.fd, ok = parseFD(fdVar); !ok {
			return bad(envFD, fmt.Errorf("want a descriptor number: %w", ErrStaleFD))
		}
		if lockVar == "" {
			return bad(envLockFD, fmt.Errorf("empty, but %s is set: %w", envFD, ErrStaleFD))
		}
		if ct.lockFD, ok = parseFD(lockVar); !ok {
			return bad(envLockFD, fmt.Errorf("want a descriptor number: %w", ErrStaleFD))
		}
		if ct.lockFD == ct.fd {
			return bad(envLockFD, fmt.Errorf("the descriptor of %s: %w", envFD, ErrStaleFD))
		}
	}
	dev, ino, _ := strings.Cut(idVar, ":")
	d, err1 := strconv.ParseUint(dev, 10, 64)
	i, err2 := strconv.ParseUint(ino, 10, 64)
	if err1 != nil || err2 != nil {
		return bad(envSocket, fmt.Errorf(`want "dev:ino", two decimal numbers: %w`, ErrStaleFD))
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
	if ct.acks {
		c.Acks = true
		if c.Tag == "" {
			c.Tag = ct.tag
		}
	}
	return checkConfig(ct.network, ct.address, &c)
}

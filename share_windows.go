package logsock

// Sharing a connection with another process, on Windows: there is none.
// The contract is made of Unix descriptors, inherited across exec or sent
// with SCM_RIGHTS, and of POSIX record locks on a shared file; a Windows
// socket is a handle that exec.Cmd does not pass. Start, SendConn and
// ReceiveConn fail with errNoSharing, and so does FromEnv for an
// environment that names a descriptor.

import (
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// errNoSharing is the error of the functions that share a connection.
var errNoSharing = fmt.Errorf("logsock: sharing a connection between processes on Windows: %w", errors.ErrUnsupported)

func (l *LogSocket) share(int) ([]*os.File, []string, error) { return nil, nil, errNoSharing }

func adoptEnv(*contract, map[string]string) (*conn, error) { return nil, errNoSharing }

// closeLockFiles does nothing: share returns no files.
func closeLockFiles([]*os.File) {}

// frameLock is the lock of a shared connection (framelock_unix.go). No connection
// is shared here, so no conn has one: its methods never run.
type frameLock struct{}

func (*frameLock) lock(time.Time, <-chan struct{}) error { return errNoSharing }
func (*frameLock) unlock(bool)                           {}
func (*frameLock) close()                                {}

// SendConn passes the connection to the process at the other end of uc,
// a Unix socket, on Unix. On Windows, which has no SCM_RIGHTS, it returns
// an error wrapping errors.ErrUnsupported.
func (l *LogSocket) SendConn(uc *net.UnixConn) error { return errNoSharing }

// ReceiveConn receives a connection that another process sent with
// SendConn on uc, on Unix. On Windows it returns an error wrapping
// errors.ErrUnsupported.
func ReceiveConn(uc *net.UnixConn, cfg *Config) (*LogSocket, error) { return nil, errNoSharing }

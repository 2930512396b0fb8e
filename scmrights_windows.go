package logsock

import "net"

// SendConn passes the connection to the process at the other end of uc,
// a Unix socket, on Unix. On Windows, which has no SCM_RIGHTS, it returns
// an error wrapping errors.ErrUnsupported.
func (l *LogSocket) SendConn(uc *net.UnixConn) error { return errNoSharing }

// ReceiveConn receives a connection that another process sent with
// SendConn on uc, on Unix. On Windows it returns an error wrapping
// errors.ErrUnsupported.
func ReceiveConn(uc *net.UnixConn, cfg *Config) (*LogSocket, error) { return nil, errNoSharing }

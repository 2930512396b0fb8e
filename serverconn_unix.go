//go:build unix

package logsock

// The serverConn's reads of its socket's descriptor, on Unix: they read
// what has arrived without waiting, with the writer's pid where the
// socket tells it.

import (
	"io"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// useRaw sets c to read its socket through the raw connection (see
// readSocket). A net.Conn that is not a socket is read through its Read
// (readConn).
func (c *serverConn) useRaw() {
	if sc, ok := c.nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			c.rc, c.lookFn, c.waitFn = rc, c.look, c.waitRead
		}
	}
}

// look is one read that does not wait (RawConn.Control).
func (c *serverConn) look(fd uintptr) {
	c.rn, c.rpid, c.rerr = c.recv(int(fd))
}

// waitRead is one read that the poller repeats while nothing has arrived
// (RawConn.Read).
func (c *serverConn) waitRead(fd uintptr) bool {
	c.rn, c.rpid, c.rerr = c.recv(int(fd))
	return c.rerr != errWouldBlock
}

// recv reads what has arrived into rbuf, without waiting, with the
// writer's pid where the socket tells it; with rbuf nil, it only checks
// that something (data, an end, an error) has arrived. Nothing yet is
// errWouldBlock.
func (c *serverConn) recv(fd int) (n int, pid int32, err error) {
	for {
		switch {
		case c.rbuf == nil:
			_, err = peekByte(fd)
		case c.creds:
			n, pid, err = recvCred(fd, c.rbuf)
		default:
			n, err = unix.Read(fd, c.rbuf)
		}
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return 0, 0, errWouldBlock
		case err != nil:
			return 0, 0, os.NewSyscallError("recv", err)
		case n == 0 && c.rbuf != nil:
			return 0, 0, io.EOF
		}
		return n, pid, nil
	}
}

// writeNow writes what the socket takes of b without waiting. wmu is held.
func (c *serverConn) writeNow(b []byte) (int, error) {
	v := c.v2
	v.out = b
	err := c.rc.Control(v.writeFn)
	v.out = nil
	if err != nil {
		return 0, err
	}
	return v.wn, v.werr
}

// writeRaw is writeNow's write (RawConn.Control).
func (c *serverConn) writeRaw(fd uintptr) {
	v := c.v2
	for {
		n, err := unix.Write(int(fd), v.out)
		switch err {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			v.wn, v.werr = 0, nil
		case nil:
			v.wn, v.werr = n, nil
		default:
			v.wn, v.werr = 0, os.NewSyscallError("write", err)
		}
		return
	}
}

// ackSendBuf is the send buffer of a v2 TCP connection: acknowledgements
// need little room, and a client that leaves them unread must fill it
// soon. With the 4 MiB that Linux's autotuning grows a buffer to, a
// client that read none stalled its own writes and kept its connection
// open for minutes; with this, about 3,600 acknowledgements (each 9
// bytes, merged while the client's window is closed) fill it.
const ackSendBuf = 16 << 10

// smallSendBuf gives a TCP socket a send buffer of ackSendBuf.
func (c *serverConn) smallSendBuf() {
	if _, ok := c.nc.(*net.TCPConn); ok && c.rc != nil {
		c.rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, ackSendBuf) })
	}
}

// shutdownRead is shutdown(fd, SHUT_RD).
func shutdownRead(fd int) { unix.Shutdown(fd, unix.SHUT_RD) }

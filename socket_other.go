//go:build unix && !linux

package logsock

import (
	"time"

	"golang.org/x/sys/unix"
)

// sendFlags: never block in the kernel. Where MSG_NOSIGNAL is missing, the Go
// runtime already turns SIGPIPE on a socket into EPIPE.
const sendFlags = unix.MSG_DONTWAIT

// sendParts writes parts with one sendmsg.
func sendParts(fd int, parts [][]byte) (int, error) {
	return unix.SendmsgBuffers(fd, parts, nil, nil, sendFlags)
}

// sendOne writes p, not empty, with one send.
func sendOne(fd int, p []byte) (int, error) {
	return unix.SendmsgBuffers(fd, [][]byte{p}, nil, nil, sendFlags)
}

// peekByte is recv(fd, 1 byte, MSG_PEEK|MSG_DONTWAIT).
func peekByte(fd int) (int, error) {
	var b [1]byte
	n, _, err := unix.Recvfrom(fd, b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	return n, err
}

// setUserTimeout does nothing where TCP_USER_TIMEOUT does not exist;
// keepalive and the write deadline still detect a dead collector.
func setUserTimeout(int, time.Duration) error { return nil }

// setSendBuffer asks for SO_SNDBUF n. The BSDs refuse one above
// kern.ipc.maxsockbuf: the default then stays, which still works.
func setSendBuffer(fd, n int) { unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, n) }

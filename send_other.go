//go:build unix && !linux

package logsock

import "golang.org/x/sys/unix"

// sendFlags: never block in the kernel. Where MSG_NOSIGNAL is missing, the Go
// runtime already turns SIGPIPE on a socket into EPIPE.
const sendFlags = unix.MSG_DONTWAIT

// sendParts writes parts with one sendmsg.
func sendParts(fd int, parts [][]byte) (int, error) {
	return unix.SendmsgBuffers(fd, parts, nil, nil, sendFlags)
}

// peekByte is recv(fd, 1 byte, MSG_PEEK|MSG_DONTWAIT).
func peekByte(fd int) (int, error) {
	var b [1]byte
	n, _, err := unix.Recvfrom(fd, b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	return n, err
}

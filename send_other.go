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

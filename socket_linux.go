package logsock

// The client's socket calls, on Linux.

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sendFlags: never block in the kernel, and return EPIPE instead of raising
// SIGPIPE when the peer is gone.
const sendFlags = unix.MSG_DONTWAIT | unix.MSG_NOSIGNAL

// maxIov is the most parts one sendmsg takes; the rest of a longer list
// goes out in the next.
const maxIov = 64

// sendOne writes p, not empty, with send(2): cheaper than sendmsg's
// iovec import.
func sendOne(fd int, p []byte) (int, error) {
	n, _, errno := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), sendFlags, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// sendParts writes parts with one sendmsg. The iovec array lives on the
// stack: unix.SendmsgBuffers would allocate it on every call.
func sendParts(fd int, parts [][]byte) (int, error) {
	if len(parts) <= 3 { // a large frame, after a handshake: zero no more of the stack than it needs
		var iov [3]unix.Iovec
		return sendIov(fd, parts, iov[:])
	}
	var iov [maxIov]unix.Iovec // a batch
	return sendIov(fd, parts, iov[:])
}

// sendIov is sendParts with iov to fill, for as many parts as it holds.
func sendIov(fd int, parts [][]byte, iov []unix.Iovec) (int, error) {
	k := 0
	for _, p := range parts {
		if k == len(iov) {
			break
		}
		if len(p) == 0 {
			continue
		}
		iov[k].Base = &p[0]
		iov[k].SetLen(len(p))
		k++
	}
	if k == 0 {
		return 0, nil
	}
	var msg unix.Msghdr
	msg.Iov = &iov[0]
	msg.SetIovlen(k)
	n, _, errno := unix.Syscall(unix.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), sendFlags)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// peekByte is recv(fd, 1 byte, MSG_PEEK|MSG_DONTWAIT), without allocating.
func peekByte(fd int) (int, error) {
	var b [1]byte
	n, _, errno := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), 1,
		unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// setUserTimeout sets TCP_USER_TIMEOUT: data unacknowledged for longer
// than d fails the connection, even while keepalive would still wait.
func setUserTimeout(fd int, d time.Duration) error {
	return unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(d.Milliseconds()))
}

// setSendBuffer asks for SO_SNDBUF n; the kernel caps it at
// net.core.wmem_max, silently.
func setSendBuffer(fd, n int) { unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, n) }

package logsock

// The system calls that are Linux's: the client's sends, peek and socket
// options, the collector's credentials and accept, and the lock file's
// memfd. Other Unixes have theirs in sys_other.go, Windows in
// sys_windows.go.

import (
	"encoding/binary"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The client's socket calls, on Linux.

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

// recvNow is recv(fd, p, MSG_DONTWAIT), without allocating.
func recvNow(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, errno := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
		unix.MSG_DONTWAIT, 0, 0)
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

// The collector's socket calls, on Linux: credentials, and accept.

// credsSupported: on Linux a Unix socket tells the collector who connected
// (SO_PEERCRED) and who wrote each byte (SO_PASSCRED).
const credsSupported = true

// peerCred returns the pid, uid and gid that the connecting process had
// when it called connect (SO_PEERCRED), as this process's pid namespace
// sees them.
func peerCred(fd int) (pid int32, uid, gid uint32, err error) {
	u, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return 0, 0, 0, err
	}
	return u.Pid, u.Uid, u.Gid, nil
}

// passCred makes the kernel attach the writer's credentials to the bytes
// that fd receives (SO_PASSCRED). Accepted sockets inherit it from their
// listener, and bytes sent before accept carry them anyway; bytes sent
// between accept and a setsockopt on the accepted socket carry none (pid
// 0), hence the listener too (measured on Linux 6.18).
func passCred(fd int) error {
	return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
}

// recvCred reads into p what has arrived, without waiting, and returns the
// pid of the process that wrote it, 0 if the bytes carry no credentials.
// With SO_PASSCRED on, the kernel never returns the bytes of two writers
// in one read (unix_stream_read_generic stops where the credentials
// change), so one pid covers them all. The message header and the control
// buffer live on the stack: a read allocates nothing.
func recvCred(fd int, p []byte) (n int, pid int32, err error) {
	var oob [8]uint64 // room for the credentials, and a few descriptors; aligned for Cmsghdr
	var iov unix.Iovec
	var msg unix.Msghdr
	if len(p) > 0 {
		iov.Base = &p[0]
		iov.SetLen(len(p))
		msg.Iov = &iov
		msg.SetIovlen(1)
	}
	msg.Control = (*byte)(unsafe.Pointer(&oob[0]))
	msg.SetControllen(int(unsafe.Sizeof(oob)))
	for {
		r, _, errno := unix.Syscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)),
			unix.MSG_DONTWAIT|unix.MSG_CMSG_CLOEXEC)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0, 0, errno
		}
		control := unsafe.Slice((*byte)(unsafe.Pointer(&oob[0])), unsafe.Sizeof(oob))[:msg.Controllen]
		return int(r), controlPid(control), nil
	}
}

// controlPid returns the pid of an SCM_CREDENTIALS message in control,
// and closes every descriptor that an SCM_RIGHTS message brought: a client
// can pass descriptors on any Unix socket, and once the collector offers a
// control buffer, the kernel installs them in its table.
func controlPid(control []byte) (pid int32) {
	hdrLen := unix.CmsgLen(0)
	for len(control) >= hdrLen {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&control[0]))
		size := int(h.Len)
		if size < hdrLen || size > len(control) {
			break
		}
		data := control[hdrLen:size]
		switch {
		case h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_CREDENTIALS && len(data) >= unix.SizeofUcred:
			pid = int32(binary.NativeEndian.Uint32(data)) // struct ucred starts with the pid
		case h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_RIGHTS:
			for ; len(data) >= 4; data = data[4:] {
				unix.Close(int(int32(binary.NativeEndian.Uint32(data))))
			}
		}
		next := unix.CmsgSpace(size - hdrLen)
		if next >= len(control) {
			break
		}
		control = control[next:]
	}
	return pid
}

// acceptNow accepts a queued connection without waiting, close-on-exec.
func acceptNow(fd int) (int, error) {
	nfd, _, err := unix.Accept4(fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
	return nfd, err
}

// closedShort reports whether the client of fd has shut down its sending
// side (POLLRDHUP) with fewer than missing bytes left to read: the frame
// that they belong to can never be completed.
func closedShort(fd, missing int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
	if n, err := unix.Poll(fds, 0); err != nil || n == 0 || fds[0].Revents&(unix.POLLRDHUP|unix.POLLHUP) == 0 {
		return false
	}
	pending, err := unix.IoctlGetInt(fd, unix.SIOCINQ)
	return err == nil && pending < missing
}

// anonymousFile returns a close-on-exec memfd: a file with no name that
// lives as long as a descriptor of it does.
func anonymousFile() (*os.File, error) {
	fd, err := unix.MemfdCreate("logsock-lock", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("memfd_create", err)
	}
	return os.NewFile(uintptr(fd), "logsock-lock"), nil
}

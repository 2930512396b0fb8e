//go:build unix

package logsock

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// SendConn passes the connection in one SCM_RIGHTS message on uc to a
// process that adopts it with ReceiveConn, to share it as Start does.
func (l *LogSocket) SendConn(uc *net.UnixConn) error {
	files, env, err := l.share(0)
	if err != nil {
		return err
	}
	defer closeLockFiles(files)
	if len(files) == 0 {
		return fmt.Errorf("logsock: SendConn: no connection to send: %w", l.link.lastError())
	}
	// The numbers through Control, not Fd, which would make the socket's
	// shared description blocking.
	var werr error
	err = control(files[0], func(sock int) error {
		return control(files[1], func(lock int) error {
			_, _, werr = uc.WriteMsgUnix([]byte(strings.Join(env, "\x00")), unix.UnixRights(sock, lock), nil)
			return nil
		})
	})
	if err = errors.Join(err, werr); err != nil {
		return fmt.Errorf("logsock: SendConn: %w", err)
	}
	return nil
}

// control calls fn with f's descriptor, through f's RawConn.
func control(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// ReceiveConn adopts a connection sent with SendConn on uc, checked as
// FromEnv does; on failure it closes the descriptors received.
func ReceiveConn(uc *net.UnixConn, cfg *Config) (*LogSocket, error) {
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4*4)) // room for more than the 2 fds we expect, to see extras
	n, oobn, flags, _, err := uc.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, fmt.Errorf("logsock: ReceiveConn: %w", err)
	}
	fds, err := parseRights(oob[:oobn])
	if err != nil {
		return nil, err
	}
	closeAll := func(fds []int) {
		for _, fd := range fds {
			closeLockFD(fd) // any of them may be a lock file this process holds
		}
	}
	if flags&unix.MSG_CTRUNC != 0 {
		closeAll(fds)
		return nil, errors.New("logsock: ReceiveConn: control message truncated (MSG_CTRUNC): descriptors were lost")
	}
	if len(fds) < 2 {
		closeAll(fds)
		return nil, fmt.Errorf("logsock: ReceiveConn: got %d descriptors, want 2", len(fds))
	}
	closeAll(fds[2:])
	vars := map[string]string{}
	for kv := range bytes.SplitSeq(buf[:n], []byte{0}) {
		k, v, _ := strings.Cut(string(kv), "=")
		vars[k] = v
	}
	l, err := receive(vars, fds[0], fds[1], cfg)
	if err != nil {
		return nil, fmt.Errorf("logsock: ReceiveConn: %w", err)
	}
	return l, nil
}

// receive returns a LogSocket on the socket fd, shared under the lock
// file lockFD, that vars describe. The descriptors are this process's,
// made by its own recvmsg: on failure it closes them, or they would leak.
// The message's envFD and envLockFD name the sender's numbers, which mean
// nothing here.
func receive(vars map[string]string, fd, lockFD int, cfg *Config) (*LogSocket, error) {
	ct, err := parseContract(vars, false)
	var c Config
	if err == nil {
		c, err = ct.config(cfg)
	}
	if err == nil {
		err = checkInherited(fd, lockFD, ct.network, ct.id)
	}
	if err != nil {
		closeInherited(fd, lockFD)
		return nil, err
	}
	conn, err := adopt(fd, lockFD, ct.network)
	if err != nil {
		return nil, err
	}
	return newLogSocket(ct.network, ct.address, &c, conn, false), nil
}

// parseRights returns the descriptors of the SCM_RIGHTS messages in oob,
// closing those of any other kind of message that carries them.
func parseRights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("logsock: ReceiveConn: %w", err)
	}
	var fds []int
	for _, m := range msgs {
		got, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue // not SCM_RIGHTS: it carries no descriptor
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

//go:build unix

package rsyslogtest

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// listening reports whether process pid holds a socket that listens on
// 127.0.0.1:port. It finds the listening socket's inode in /proc/net/tcp
// and looks for it among the process's descriptors. A test connection
// would be fooled by another process on the port (rsyslogd that fails to
// bind keeps running), and would leave a session in rsyslogd. Where there
// is no /proc, it dials.
func listening(pid, port int) (bool, error) {
	f, err := os.Open("/proc/net/tcp")
	if errors.Is(err, fs.ErrNotExist) {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if err != nil {
			return false, nil
		}
		c.Close()
		return true, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	// "  sl  local_address rem_address   st ... inode": the IPv4 address
	// is its four bytes read as a native-endian word, in hex; state 0A is
	// LISTEN.
	local := fmt.Sprintf("%08X:%04X", binary.NativeEndian.Uint32([]byte{127, 0, 0, 1}), port)
	var socket string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 10 && fields[1] == local && fields[3] == "0A" {
			socket = "socket:[" + fields[9] + "]"
			break
		}
	}
	if err := sc.Err(); err != nil || socket == "" {
		return false, err
	}
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		return false, nil // exited: the caller sees it
	}
	for _, fd := range fds {
		if link, err := os.Readlink(fdDir + "/" + fd.Name()); err == nil && link == socket {
			return true, nil
		}
	}
	return false, nil
}

// Unread returns the bytes that the connections to rsyslogd's port have
// received and rsyslogd has not read: the receive queues of the
// established sockets on 127.0.0.1:port, from /proc/net/tcp (Linux only).
// What they hold when rsyslogd stops is lost.
func (s *Server) Unread() (int, error) {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return 0, fmt.Errorf("rsyslogtest: %w", err)
	}
	local := fmt.Sprintf("%08X:%04X", binary.NativeEndian.Uint32([]byte{127, 0, 0, 1}), s.port)
	total := 0
	for _, line := range strings.Split(string(b), "\n") {
		// "sl local_address rem_address st tx_queue:rx_queue ...", in hex;
		// state 01 is ESTABLISHED.
		fields := strings.Fields(line)
		if len(fields) < 5 || fields[1] != local || fields[3] != "01" {
			continue
		}
		_, rx, _ := strings.Cut(fields[4], ":")
		n, err := strconv.ParseUint(rx, 16, 32)
		if err != nil {
			return 0, fmt.Errorf("rsyslogtest: /proc/net/tcp: %q", line)
		}
		total += int(n)
	}
	return total, nil
}

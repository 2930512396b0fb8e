//go:build unix

package main

// systemd's side of a service, written by hand rather than with a module:
// socket activation, the listening sockets that systemd passes (the
// protocol of sd_listen_fds(3)), and readiness, the states that logsockd
// tells it (sd_notify(3)). Both are a few environment variables and, for
// readiness, one datagram a state.

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// listenFdsStart is the first descriptor that systemd passes (SD_LISTEN_FDS_START).
const listenFdsStart = 3

// activatedListeners returns the listening sockets that systemd passed to
// this process: LISTEN_FDS descriptors from 3, when LISTEN_PID is this
// process's pid (variables meant for another process, a parent's that
// leaked, are ignored, as sd_listen_fds does). Each must be a listening
// stream socket, TCP or Unix; its descriptor is made close-on-exec, and
// the variables are unset, so that no child takes them for its own.
func activatedListeners() ([]net.Listener, error) {
	pids, fds, names := os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_FDNAMES")
	for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		os.Unsetenv(v)
	}
	if fds == "" || pids == "" {
		return nil, nil
	}
	pid, err := strconv.Atoi(pids)
	if err != nil || pid <= 0 {
		return nil, fmt.Errorf("socket activation: LISTEN_PID=%q: want a pid", pids)
	}
	if pid != os.Getpid() {
		return nil, nil
	}
	n, err := strconv.Atoi(fds)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("socket activation: LISTEN_FDS=%q: want a number of descriptors", fds)
	}
	var nameOf []string
	if names != "" {
		nameOf = strings.Split(names, ":")
	}
	var ls []net.Listener
	for i := range n {
		fd := listenFdsStart + i
		name := "LISTEN_FDS " + strconv.Itoa(fd)
		if i < len(nameOf) && nameOf[i] != "" {
			name = nameOf[i]
		}
		l, err := fdListener(fd, name)
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			return nil, fmt.Errorf("socket activation: descriptor %d (%s): %w", fd, name, err)
		}
		ls = append(ls, l)
	}
	return ls, nil
}

// errNotListening says that a passed descriptor is not a listening stream
// socket, which logsockd cannot serve (a datagram socket, say, that a
// socket unit's ListenDatagram= made).
var errNotListening = errors.New("not a listening stream socket: logsockd serves ListenStream= sockets")

// fdListener returns a listener on descriptor fd, which it takes over.
func fdListener(fd int, name string) (net.Listener, error) {
	unix.CloseOnExec(fd)
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return nil, fmt.Errorf("not a socket: %w", err)
	}
	acc, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil {
		return nil, err
	}
	if typ != unix.SOCK_STREAM || acc == 0 {
		return nil, errNotListening
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close() // FileListener has its own duplicate
	l, err := net.FileListener(f)
	if err != nil {
		return nil, err
	}
	if network := l.Addr().Network(); network != "tcp" && network != "unix" {
		l.Close()
		return nil, fmt.Errorf("a %s socket: logsockd serves TCP and Unix sockets", network)
	}
	return l, nil
}

// notifier tells systemd the service's state, as sd_notify(3) does: one
// datagram to the Unix socket NOTIFY_SOCKET names (a path, or an abstract
// address that starts with '@'). A nil notifier, without NOTIFY_SOCKET,
// tells nothing.
type notifier struct {
	addr *net.UnixAddr
}

// newNotifier returns the notifier for NOTIFY_SOCKET, nil if it is unset,
// and unsets it, so that no child of logsockd takes it for its own.
func newNotifier() (*notifier, error) {
	path := os.Getenv("NOTIFY_SOCKET")
	os.Unsetenv("NOTIFY_SOCKET")
	if path == "" {
		return nil, nil
	}
	if path[0] != '/' && path[0] != '@' {
		return nil, fmt.Errorf("NOTIFY_SOCKET=%q: want a path or an abstract address (@name)", path)
	}
	// Go's Unix addresses take a leading '@' for Linux's abstract
	// namespace, as systemd writes it.
	return &notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}, nil
}

// notify sends state, lines of VARIABLE=value. Each call uses a socket of
// its own, as sd_notify does: one connected for good would not follow
// systemd when it re-executes itself and binds the socket anew.
func (n *notifier) notify(state string) error {
	if n == nil {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sd_notify %q to %s: %w", state, n.addr.Name, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify %q to %s: %w", state, n.addr.Name, err)
	}
	return nil
}

// reloading is the state that starts a reload: RELOADING=1, with the
// CLOCK_MONOTONIC time in microseconds that systemd 253 and later ask of
// Type=notify-reload services (and earlier ones ignore).
func reloading() string {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return "RELOADING=1"
	}
	return fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", ts.Nano()/1000)
}

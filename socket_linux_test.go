package logsock

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestTCPOptions: keepalive and TCP_USER_TIMEOUT are on by default, as
// configured, and off when asked; TCP_NODELAY is set, as Go does.
func TestTCPOptions(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go holdConns(l)
	for _, tc := range []struct {
		cfg                           *Config
		keepAlive, idle, utm, nodelay int
	}{
		{nil, 1, 15, 20000, 1},
		{&Config{KeepAlive: 60e9, UserTimeout: 5e9}, 1, 60, 5000, 1},
		{&Config{KeepAlive: -1, UserTimeout: -1}, 0, -1, 0, 1},
		{&Config{Batching: true}, 1, 15, 20000, 1},
	} {
		ls, err := Dial("tcp", l.Addr().String(), tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		get := func(level, opt int) (v int) {
			ls.link.current().rc.Control(func(fd uintptr) {
				v, err = unix.GetsockoptInt(int(fd), level, opt)
			})
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		if v := get(unix.SOL_SOCKET, unix.SO_KEEPALIVE); v != tc.keepAlive {
			t.Errorf("%+v: SO_KEEPALIVE %d, want %d", tc.cfg, v, tc.keepAlive)
		}
		if v := get(unix.IPPROTO_TCP, unix.TCP_KEEPIDLE); tc.idle >= 0 && v != tc.idle {
			t.Errorf("%+v: TCP_KEEPIDLE %d, want %d", tc.cfg, v, tc.idle)
		}
		if v := get(unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT); v != tc.utm {
			t.Errorf("%+v: TCP_USER_TIMEOUT %d, want %d", tc.cfg, v, tc.utm)
		}
		if v := get(unix.IPPROTO_TCP, unix.TCP_NODELAY); v != tc.nodelay {
			t.Errorf("%+v: TCP_NODELAY %d, want %d", tc.cfg, v, tc.nodelay)
		}
		ls.Close()
	}
}

// TestAdoptKeepsNoDelay: a process that adopts a shared connection leaves
// TCP_NODELAY as its maker set it (here off, as a Python parent leaves
// it), although net.FileConn sets it.
func TestAdoptKeepsNoDelay(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			defer c.Close()
			c.Read(make([]byte, 1)) // until the client closes
		}
	}()
	ls, err := Dial("tcp", l.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	if err := ls.link.current().nc.(*net.TCPConn).SetNoDelay(false); err != nil {
		t.Fatal(err)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	x, y := unixConn(t, fds[0]), unixConn(t, fds[1])
	if err := ls.SendConn(x); err != nil {
		t.Fatal(err)
	}
	other, err := ReceiveConn(y, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for _, l := range []*LogSocket{ls, other} {
		var v int
		l.link.current().rc.Control(func(fd uintptr) {
			v, err = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NODELAY)
		})
		if err != nil || v != 0 {
			t.Errorf("TCP_NODELAY %d (%v) after ReceiveConn, want 0", v, err)
		}
	}
}

func unixConn(t *testing.T, fd int) *net.UnixConn {
	t.Helper()
	f := os.NewFile(uintptr(fd), "socketpair")
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.UnixConn)
}

// TestUnixSendBuffer: batching mode asks for a send buffer of
// unixSendBuffer on a Unix socket, which the kernel caps at wmem_max and
// doubles; direct mode leaves the default.
func TestUnixSendBuffer(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/net/core/wmem_max")
	if err != nil {
		t.Skip(err)
	}
	var wmemMax int
	if _, err := fmt.Sscan(string(b), &wmemMax); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "logsock") // short: a socket path has 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	l, err := net.Listen("unix", filepath.Join(dir, "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go holdConns(l)
	sndbuf := func(cfg *Config) int {
		ls, err := Dial("unix", l.Addr().String(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer ls.Close()
		var v int
		ls.link.current().rc.Control(func(fd uintptr) { v, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF) })
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	direct, batching := sndbuf(nil), sndbuf(&Config{Batching: true})
	if want := 2 * min(unixSendBuffer, wmemMax); batching != want {
		t.Errorf("batching: SO_SNDBUF %d, want %d (wmem_max %d)", batching, want, wmemMax)
	}
	if direct == batching && wmemMax > direct {
		t.Errorf("direct: SO_SNDBUF %d, the same as batching", direct)
	}
	t.Logf("SO_SNDBUF: direct %d, batching %d", direct, batching)
}

// holdConns accepts connections and keeps them open until l is closed.
func holdConns(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
	}
}

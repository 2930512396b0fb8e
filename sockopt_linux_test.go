package logsock

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// TestTCPOptions: keepalive and TCP_USER_TIMEOUT are on by default, as
// configured, and off when asked.
func TestTCPOptions(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	for _, tc := range []struct {
		cfg                  *Config
		keepAlive, idle, utm int
	}{
		{nil, 1, 15, 20000},
		{&Config{KeepAlive: 60e9, UserTimeout: 5e9}, 1, 60, 5000},
		{&Config{KeepAlive: -1, UserTimeout: -1}, 0, -1, 0},
	} {
		ls, err := Dial("tcp", l.Addr().String(), tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		get := func(level, opt int) (v int) {
			ls.live.Load().rc.Control(func(fd uintptr) {
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
		ls.Close()
	}
}

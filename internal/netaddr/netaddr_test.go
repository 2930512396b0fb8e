package netaddr

import "testing"

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in, network, address string
		ok                   bool
	}{
		{"127.0.0.1:39999", "tcp", "127.0.0.1:39999", true},
		{"tcp://127.0.0.1:0", "tcp", "127.0.0.1:0", true},
		{"tcp6://[::1]:9", "tcp6", "[::1]:9", true},
		{"unix:///tmp/log.sock", "unix", "/tmp/log.sock", true},
		{"tls://0.0.0.0:6514", "tls", "0.0.0.0:6514", true},
		{"tls://host", "", "", false},
		{"unix://", "", "", false},
		{"udp://127.0.0.1:9", "", "", false},
		{"localhost", "", "", false},
	} {
		network, address, err := Parse(tc.in)
		if (err == nil) != tc.ok || network != tc.network || address != tc.address {
			t.Errorf("Parse(%q) = %q, %q, %v", tc.in, network, address, err)
		}
		if tc.ok {
			if back := Format(network, address); back != tc.in && "tcp://"+tc.in != back {
				t.Errorf("Format(Parse(%q)) = %q", tc.in, back)
			}
		}
	}
}

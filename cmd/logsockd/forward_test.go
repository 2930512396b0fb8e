//go:build unix

package main

import (
	"flag"
	"io"
	"net"
	"testing"
	"time"

	"github.com/logsock/logsock"
)

func TestRFC5424(t *testing.T) {
	const head = "<14>1 2026-11-26T00:25:42.522835Z web-1 logsockd "
	v6 := tcpRecord("over IPv6\n")
	v6.Remote = &net.TCPAddr{IP: net.IPv6loopback, Port: 514}
	invalid := unixRecord("bad \xff\n")
	invalid.Flags = logsock.FlagInvalidUTF8
	noWriter := unixRecord("")
	noWriter.WriterPid = 0
	for _, tc := range []struct {
		name string
		rec  *logsock.Record
		want string
	}{
		// PROCID is the handshake pid where the writer is unknown (TCP).
		{"tcp", tcpRecord("started\n"),
			head + `6530 - [logsock@32473 conn="7" pid="6530" remote="10.0.0.2:54321"] started` + "\n"},
		// The address's brackets: ']' is escaped in a PARAM-VALUE.
		{"ipv6", v6, head + `6530 - [logsock@32473 conn="7" pid="6530" remote="[::1\]:514"] over IPv6` + "\n"},
		// PROCID is the writer's pid where the kernel tells it.
		{"unix", unixRecord("current pid: 998"),
			head + `998 - [logsock@32473 conn="3" pid="991" peer_pid="991" peer_uid="0" peer_gid="4" writer_pid="998"] current pid: 998`},
		// The bytes go as they are, a trailing newline too (issue 12: the
		// message bytes unchanged; rsyslog drops one itself by default).
		{"invalid-utf8", invalid,
			head + `998 - [logsock@32473 conn="3" pid="991" peer_pid="991" peer_uid="0" peer_gid="4" writer_pid="998" flags="invalid_utf8"] bad ` + "\xff\n"},
		// No MSG: the message ends with the structured data.
		{"empty", noWriter, head + `991 - [logsock@32473 conn="3" pid="991" peer_pid="991" peer_uid="0" peer_gid="4"]`},
		// A v2 record: PRI 8+3 (user.err), the client's time, the tag as
		// APP-NAME, its session and number in the structured data.
		{"v2", v2Record(tcpRecord("failed\n")),
			`<11>1 2026-11-26T00:25:39.522835Z web-1 svc 6530 - [logsock@32473 conn="7" pid="6530" remote="10.0.0.2:54321" session="` +
				v2Session + `" seq="17"] failed` + "\n"},
		{"newlines", tcpRecord("a\nb\n\n"),
			head + `6530 - [logsock@32473 conn="7" pid="6530" remote="10.0.0.2:54321"] a` + "\nb\n\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newForwarder("relay:514", "web-1", "logsockd", nil)
			if got := string(f.append(nil, tc.rec)); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestSDParamEscapes(t *testing.T) {
	got := string(appendSDParam(nil, "k", []byte(`a"b\c]d[e`)))
	if want := ` k="a\"b\\c\]d[e"`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestSyslogNames(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"web-1.example.com", "web-1.example.com"},
		{"", "-"},
		{"a b\té", "a_b__"},
	} {
		if got := syslogHostname(tc.in); got != tc.want {
			t.Errorf("syslogHostname(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, name := range []string{"logsockd", "a", "x-y_z.1", "123456789012345678901234567890123456789012345678"} {
		if err := checkAppName(name); err != nil {
			t.Errorf("checkAppName(%q): %v", name, err)
		}
	}
	for _, name := range []string{"", "a b", "é", "1234567890123456789012345678901234567890123456789"} {
		if err := checkAppName(name); err == nil {
			t.Errorf("checkAppName(%q) = nil, want an error", name)
		}
	}
	for _, tc := range []struct {
		in, want string
		tls      bool
	}{
		{"syslog+tcp://relay:514", "relay:514", false},
		{"syslog+tcp://[::1]:6514", "[::1]:6514", false},
		{"syslog+tls://relay:6514", "relay:6514", true},
		{"syslog+tcp://relay", "", false},
		{"syslog+tls://relay", "", false},
		{"syslog+tcp://:514", "", false},
		{"tcp://relay:514", "", false},
		{"tls://relay:514", "", false},
		{"syslog+udp://relay:514", "", false},
	} {
		got, isTLS, err := parseForward(tc.in)
		if got != tc.want || isTLS != tc.tls || (err == nil) != (tc.want != "") {
			t.Errorf("parseForward(%q) = %q, %v, %v; want %q, %v", tc.in, got, isTLS, err, tc.want, tc.tls)
		}
	}
}

// TestForwardDefaults: the forwarder's defaults keep up with a syslog
// server that goes away or stalls (issue 20): 64 MiB held, attempts at
// most a second apart, the oldest dropped beyond, and a stalled
// connection given up by the kernel after -forward-timeout, never first
// by the write's own timeout.
func TestForwardDefaults(t *testing.T) {
	var f forwardFlags
	flags := flag.NewFlagSet("logsockd", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	f.register(flags)
	if err := flags.Parse([]string{"-forward", "syslog+tcp://relay:514"}); err != nil {
		t.Fatal(err)
	}
	if err := f.check(); err != nil {
		t.Fatal(err)
	}
	cfg, err := f.config(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BufferBytes != 64<<20 || cfg.MaxBackoff != time.Second || cfg.Overflow != logsock.DropOldest ||
		cfg.UserTimeout != 30*time.Second || cfg.WriteTimeout <= cfg.UserTimeout || cfg.TLS != nil {
		t.Errorf("%+v: want BufferBytes 64 MiB, MaxBackoff 1s, DropOldest, UserTimeout 30s and a longer WriteTimeout, no TLS", cfg)
	}
}

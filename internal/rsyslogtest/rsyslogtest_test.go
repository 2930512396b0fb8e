//go:build unix

package rsyslogtest_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logsock/logsock/internal/rsyslogtest"
	"github.com/logsock/logsock/internal/tlstest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type message struct {
	procid, sd string
	msg        []byte
}

// frame returns m as an RFC 5424 message with octet-counting framing
// (RFC 6587): "LEN SP SYSLOG-MSG".
func frame(m message) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "<14>1 2026-11-29T15:04:05.123456Z host app %s - %s ", m.procid, m.sd)
	b.Write(m.msg)
	return append(fmt.Appendf(nil, "%d ", b.Len()), b.Bytes()...)
}

// send writes ms on one connection to addr and closes it.
func send(t *testing.T, addr string, ms ...message) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, m := range ms {
		if _, err := c.Write(frame(m)); err != nil {
			t.Fatal(err)
		}
	}
}

func start(t *testing.T, ctx context.Context, tmpl rsyslogtest.Template) *rsyslogtest.Server {
	t.Helper()
	rsyslogtest.Require(t)
	began := time.Now()
	s, err := rsyslogtest.Start(ctx, t.TempDir(), tmpl)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	t.Logf("rsyslogd listening on %s after %v", s.Addr(), time.Since(began).Round(time.Millisecond))
	return s
}

// checkLines parses lines with ParseLine and compares them with want.
func checkLines(t *testing.T, lines []string, want []message) {
	t.Helper()
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), strings.Join(lines, "\n"))
	}
	for i, line := range lines {
		procid, msg, err := rsyslogtest.ParseLine(line)
		if err != nil {
			t.Errorf("line %d: %v", i+1, err)
			continue
		}
		if procid != want[i].procid || !bytes.Equal(msg, want[i].msg) {
			t.Errorf("line %d: procid %q msg %q, want %q %q", i+1, procid, msg, want[i].procid, want[i].msg)
		}
	}
}

// TestLines checks what the package documentation promises about the
// bytes of a message, then that the Server accepts again after Stop and
// Restart, on the same port, appending to the same file.
func TestLines(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := start(t, ctx, rsyslogtest.Lines)

	var every []byte // every byte but NUL
	for b := 1; b < 256; b++ {
		every = append(every, byte(b))
	}
	ms := []message{
		{"101", "-", []byte("café, 日本語, a BOM \ufeff, invalid UTF-8 \xff\xfe\xc3")},
		{"102", `[ex@32473 k="a b" q="x\"y\]z"]`, []byte("  structured data with spaces before me, a trailing space ")},
		{"103", "-", every},
		{"104", "-", []byte("a trailing LF\n")},
		{"105", "-", nil},
	}
	began := time.Now()
	send(t, s.Addr(), ms...)
	lines, err := s.WaitLines(ctx, len(ms))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d lines in the file %v after the send", len(lines), time.Since(began).Round(time.Millisecond))
	checkLines(t, lines, ms)

	// NUL is the exception: rsyslog writes it as "#000", whatever the
	// escaping settings. A change of rsyslog's shows up here.
	nul := message{"106", "-", []byte("a\x00b")}
	send(t, s.Addr(), nul)
	lines, err = s.WaitLines(ctx, len(ms)+1)
	if err != nil {
		t.Fatal(err)
	}
	checkLines(t, lines[len(ms):], []message{{"106", "-", []byte("a#000b")}})

	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if c, err := net.Dial("tcp", s.Addr()); !errors.Is(err, syscall.ECONNREFUSED) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("dial after Stop: %v, want connection refused", err)
	}
	addr := s.Addr()
	began = time.Now()
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("restarted in %v", time.Since(began).Round(time.Millisecond))
	if s.Addr() != addr {
		t.Fatalf("address %s after Restart, want %s", s.Addr(), addr)
	}
	again := message{"107", "-", []byte("after the restart")}
	send(t, s.Addr(), again)
	lines, err = s.WaitLines(ctx, len(ms)+2)
	if err != nil {
		t.Fatal(err)
	}
	checkLines(t, lines[len(ms)+1:], []message{again})

	// A running rsyslogd is stopped by Restart too.
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Restart(ctx); err == nil {
		t.Fatal("Restart after Close: nil error")
	}
}

// TestTLS: rsyslogd with a TLS listener that requires a client
// certificate takes octet-counted frames over TLS from a client that
// presents one, and writes them as sent; a client without one is refused,
// and nothing it sends is written.
func TestTLS(t *testing.T) {
	t.Parallel()
	rsyslogtest.RequireTLS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	set, remove, err := tlstest.NewTemp()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(remove)
	s, err := rsyslogtest.StartWith(ctx, t.TempDir(), rsyslogtest.Options{Template: rsyslogtest.Lines,
		TLS: &rsyslogtest.TLS{CAFile: set.CAFile, CertFile: set.CertFile, KeyFile: set.KeyFile, ClientAuth: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	sendTLS := func(cfg *tls.Config, m message) error {
		c, err := tls.Dial("tcp", s.Addr(), cfg)
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.Write(frame(m)); err != nil {
			return err
		}
		// The server's verdict on the certificate, in TLS 1.3, comes
		// after the handshake: a refusal ends the read.
		c.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("read after the write: %w", err)
		}
		return nil
	}
	noCert := set.ClientConfig()
	noCert.Certificates = nil
	if err := sendTLS(noCert, message{"1", "-", []byte("no certificate")}); err == nil {
		t.Error("a client without a certificate was not refused")
	} else {
		t.Logf("without a certificate: %v", err)
	}
	want := message{"2", "-", []byte("over TLS: café \xff \"q\"\n")}
	if err := sendTLS(set.ClientConfig(), want); err != nil {
		t.Fatal(err)
	}
	lines, err := s.WaitLines(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	checkLines(t, lines, []message{want})
}

func TestJSON(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := start(t, ctx, rsyslogtest.JSON)
	m := message{"4242", "-", []byte("a \"quoted\" message, café\n")}
	send(t, s.Addr(), m)
	lines, err := s.WaitLines(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(lines[0]), &got); err != nil {
		t.Fatalf("%q: %v", lines[0], err)
	}
	want := map[string]string{"time": "2026-11-29T15:04:05.123456Z", "host": "host", "pid": "4242", "msg": string(m.msg)}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestWaitLinesGivesUp checks that WaitLines ends with its context.
func TestWaitLinesGivesUp(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := start(t, ctx, rsyslogtest.Lines)
	send(t, s.Addr(), message{"1", "-", []byte("one")})
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	lines, err := s.WaitLines(short, 2)
	if !errors.Is(err, context.DeadlineExceeded) || len(lines) != 1 {
		t.Fatalf("WaitLines(2) after 1 message: %q, %v; want 1 line and a deadline error", lines, err)
	}
}

func TestParseLine(t *testing.T) {
	for _, tc := range []struct {
		line, procid, msg string
	}{
		{`1 plain`, "1", "plain"},
		{`- `, "-", ""},
		{`7 \"\\\/\b\f\n\r\t\u0001\u001F\u001f`, "7", "\"\\/\b\f\n\r\t\x01\x1f\x1f"},
		{"8 \x7f\xff caf\xc3\xa9", "8", "\x7f\xff caf\xc3\xa9"},
		{`9 ends with a space `, "9", "ends with a space "},
	} {
		procid, msg, err := rsyslogtest.ParseLine(tc.line)
		if err != nil || procid != tc.procid || string(msg) != tc.msg {
			t.Errorf("ParseLine(%q) = %q, %q, %v; want %q, %q", tc.line, procid, msg, err, tc.procid, tc.msg)
		}
	}
	for _, bad := range []string{
		``, `noprocid`, ` empty procid`, `1 raw "quote`, "1 raw\ttab", `1 ends \`,
		`1 \x`, `1 \u00`, `1 \u0020`, `1 \u+01f`, `1 \uzzzz`,
	} {
		if procid, msg, err := rsyslogtest.ParseLine(bad); err == nil {
			t.Errorf("ParseLine(%q) = %q, %q, nil; want an error", bad, procid, msg)
		}
	}
}

package logsock_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/logsocktest"
	"github.com/logsock/logsock/internal/tlstest"
)

// serveTLS runs srv on a TLS listener with cfg, on addr of loopback,
// until the test ends, or until stop, which shuts it down gracefully; it
// returns the address to dial.
func serveTLS(t *testing.T, srv *logsock.Server, cfg *tls.Config, addr string) (string, func()) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return l.Addr().String(), logsocktest.ServeOn(t, srv, tls.NewListener(l, cfg))
}

// tlsCollector runs a Server on a TLS listener with set's certificate, up
// to TLS version (0: the highest), that requires a client certificate.
func tlsCollector(t *testing.T, set *tlstest.Set, version uint16) (col *connLog, addr string, srvCfg *tls.Config, stop func()) {
	t.Helper()
	srvCfg = set.ServerConfig(true)
	srvCfg.MaxVersion = version
	col = newConnLog()
	addr, stop = serveTLS(t, col.Server(), srvCfg, "127.0.0.1:0")
	return col, addr, srvCfg, stop
}

// TestTLS: a client with Config.TLS, in each mode, logs into a Server on
// a TLS listener that requires a client certificate: the frames arrive
// whole and in order, after the handshake's pid, from a TCP address.
func TestTLS(t *testing.T) {
	t.Parallel()
	set := logsocktest.Certs(t)
	for _, batching := range []bool{false, true} {
		t.Run(fmt.Sprintf("batching=%v", batching), func(t *testing.T) {
			col, addr, _, _ := tlsCollector(t, set, 0)
			ls := dial(t, "tcp", addr, &logsock.Config{TLS: set.ClientConfig(), Batching: batching})
			// Small frames, and one larger than a TLS record (16 KiB), which
			// goes out in parts.
			msgs := []string{"first", "héllo ✓ \xff", strings.Repeat("x", 40000), "last"}
			for _, m := range msgs {
				if err := ls.Log(m); err != nil {
					t.Fatal(err)
				}
			}
			recs := col.WaitRecords(t, len(msgs))
			for i, r := range recs {
				if string(r.Msg) != msgs[i] || r.Pid != int32(os.Getpid()) || r.Conn != 1 {
					t.Fatalf("record %d: %.40q on conn %d, pid %d; want %.40q on conn 1, pid %d", i, r.Msg, r.Conn, r.Pid, msgs[i], os.Getpid())
				}
				if _, ok := r.Remote.(*net.TCPAddr); !ok {
					t.Fatalf("record %d: remote %v, want a TCP address", i, r.Remote)
				}
			}
			if err := ls.Close(); err != nil {
				t.Fatal(err)
			}
			// Close sends close_notify: the collector sees the end of the
			// stream, not an error.
			if end := col.waitConnEnd(t, 1); end.err != nil || end.info.Reason != logsock.ReasonEOF {
				t.Errorf("the connection ended with %v, %v; want %v and no error", end.info.Reason, end.err, logsock.ReasonEOF)
			}
		})
	}
}

// TestTLSRefused: a client that does not trust the server's authority
// fails to dial, with an error that says why (a typed one, within the
// OpError); so does a client without a certificate, where the server
// requires one: in TLS 1.3 the refusal comes after the client's handshake
// is over, as an alert that the dial waits for. The server's ConnClosed
// says why too.
func TestTLSRefused(t *testing.T) {
	set, other := logsocktest.Certs(t), logsocktest.Certs(t)
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			col, addr, _, _ := tlsCollector(t, set, version)

			_, err := logsock.Dial("tcp", addr, &logsock.Config{TLS: other.ClientConfig()})
			var unknown x509.UnknownAuthorityError
			var op *logsock.OpError
			if !errors.As(err, &unknown) || !errors.As(err, &op) || op.Op != "dial" ||
				!strings.Contains(err.Error(), "certificate signed by unknown authority") {
				t.Fatalf("Dial with another authority: %v; want an OpError for the dial that wraps an x509.UnknownAuthorityError", err)
			}
			t.Logf("another authority: %v", err)
			end := col.waitEnd(t, "the first connection's end", func(i logsock.ConnInfo) bool { return i.Conn == 1 })
			if !strings.Contains(fmt.Sprint(end.err), "bad certificate") {
				t.Errorf("the server ended the connection with %v; want the client's alert, bad certificate", end.err)
			}

			cfg := set.ClientConfig()
			cfg.Certificates = nil
			ls, err := logsock.Dial("tcp", addr, &logsock.Config{TLS: cfg})
			if err == nil {
				ls.Close()
			}
			// The server's alert: "certificate required" in TLS 1.3,
			// "handshake failure" in 1.2.
			if !errors.As(err, &op) || op.Op != "dial" || !strings.Contains(err.Error(), "remote error: tls: ") {
				t.Fatalf("Dial without a client certificate: %v; want an OpError for the dial with the server's alert", err)
			}
			t.Logf("no client certificate: %v", err)
			end = col.waitEnd(t, "the second connection's end", func(i logsock.ConnInfo) bool { return i.Conn == 2 })
			if end.info.Frames != 0 || !strings.Contains(fmt.Sprint(end.err), "certificate") {
				t.Fatalf("the server ended the connection after %d frames with %v; want none, and an error about the certificate", end.info.Frames, end.err)
			}
		})
	}
}

// TestTLSNotShared: a TLS session is the process's own: Start refuses to
// share it, and New refuses TLS over a Unix socket.
func TestTLSNotShared(t *testing.T) {
	unixOnly(t, "Start is Unix's")
	set := logsocktest.Certs(t)
	addr, _ := serveTLS(t, logsocktest.NewSink().Server(), set.ServerConfig(false), "127.0.0.1:0")
	ls := dial(t, "tcp", addr, &logsock.Config{TLS: set.ClientConfig()})
	cmd := exec.Command("true")
	if err := ls.Start(cmd); err == nil || !strings.Contains(err.Error(), "TLS") || cmd.Process != nil {
		t.Fatalf("Start on a TLS LogSocket: %v; want an error naming TLS, and no child", err)
	}
	if _, err := logsock.New("unix", logsocktest.SocketPath(t), &logsock.Config{TLS: set.ClientConfig()}); err == nil {
		t.Fatal("New with TLS over a Unix socket: nil error")
	}
}

// TestAcksTLS: acknowledged delivery over TLS, in both modes, under load:
// the Server, which cannot write a TLS record without waiting, leaves its
// acknowledgements to a goroutine of its timer, so that it never stops
// reading while the client writes (issue 19).
func TestAcksTLS(t *testing.T) {
	t.Parallel()
	set := logsocktest.Certs(t)
	for _, batching := range []bool{false, true} {
		t.Run(fmt.Sprintf("batching=%v", batching), func(t *testing.T) {
			col, addr, _, _ := tlsCollector(t, set, 0)
			ls := dial(t, "tcp", addr, &logsock.Config{TLS: set.ClientConfig(), Batching: batching, Acks: true})
			const n = 20000
			msg := strings.Repeat("x", 200)
			for range n {
				if err := ls.Log(msg); err != nil {
					t.Fatal(err)
				}
			}
			flush(t, ls)
			if st := ls.Stats(); st.Acked != n || st.Reconnects != 0 {
				t.Fatalf("Stats %+v; want %d acknowledged on one connection", st, n)
			}
			col.WaitRecords(t, n)
		})
	}
}

//go:build unix

package logsock_test

import (
	"crypto/tls"
	"fmt"
	"testing"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/logsocktest"
)

// TestTLSPeekSeesClose: the peek before a write reads what a TLS server
// sends through the TLS layer. A TLS 1.3 server sends session tickets
// after the handshake: taken as a sign of life by a raw peek, they would
// hide the end behind them, and taken as the end, they would drop every
// connection. With a check before every frame, frames on a live connection
// cause no reconnect; after the collector shuts down gracefully (its
// close_notify and FIN behind the tickets), the next frame goes, as the
// first, to a new collector on the same address, and nothing is lost.
// The dial's wait for the server's verdict is off, since it would read
// the tickets before the peek could (as it does when they come in time).
func TestTLSPeekSeesClose(t *testing.T) {
	unixOnly(t, "no peek (Config.PeekInterval)")
	logsock.SetTLSVerdict(false)
	t.Cleanup(func() { logsock.SetTLSVerdict(true) })
	set := logsocktest.Certs(t)
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			t.Parallel() // with each other only: the test is not, for SetTLSVerdict
			first, addr, srvCfg, stop := tlsCollector(t, set, version)
			// A session cache: a Go server sends tickets only to a client
			// that can resume (RFC 8446 4.2.9's psk_key_exchange_modes).
			cliCfg := set.ClientConfig()
			cliCfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			ls := dial(t, "tcp", addr, &logsock.Config{TLS: cliCfg, PeekInterval: time.Nanosecond})
			// The server's handshake, tickets included, is over once it has
			// read a frame: the frames after that are written with the
			// tickets waiting on the client's socket.
			const n = 10
			for i := range n {
				if err := ls.Log(fmt.Sprint("before ", i)); err != nil {
					t.Fatal(err)
				}
				first.WaitRecords(t, i+1)
			}
			if st := ls.Stats(); st.Connects != 1 || st.Reconnects != 0 {
				t.Fatalf("Stats %+v: want one connection, and no reconnect while the collector is up", st)
			}
			stop()

			second := newConnLog()
			serveTLS(t, second.Server(), srvCfg, addr)
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("Stats %+v; the goroutines of logsock:\n%s", ls.Stats(), logsocktest.Stacks("logsock"))
				}
			})
			if err := ls.Log("after"); err != nil {
				t.Fatal(err)
			}
			r := second.waitMsg(t, "after")
			if st := ls.Stats(); r.Conn != 1 || st.Reconnects != 1 || st.Resent != 0 {
				t.Fatalf("\"after\" on the new collector's connection %d; Stats %+v: want it first on connection 1, the close found before writing (1 reconnect, nothing re-sent)", r.Conn, st)
			}
		})
	}
}

package logsock

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/logsock/logsock/internal/tlstest"
)

// TestCloseTLSBounded: the close_notify alert that closes a TLS connection
// waits closeNotifyWait at most for a peer that reads nothing more, where
// tls.Conn's own Close would wait 5 s. The pipe takes no byte until its
// other end reads, which after the handshake it never does.
func TestCloseTLSBounded(t *testing.T) {
	t.Parallel()
	set, remove, err := tlstest.NewTemp()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(remove)
	cli, srv := net.Pipe()
	t.Cleanup(func() { srv.Close() })
	handshook := make(chan error, 1)
	go func() { handshook <- tls.Server(srv, set.ServerConfig(false)).Handshake() }()
	c := &conn{nc: cli}
	cfg := set.ClientConfig()
	cfg.ServerName = "localhost"
	if err := c.startTLS(context.Background(), cfg, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := <-handshook; err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if err := c.close(); err != nil {
		t.Errorf("close: %v", err)
	}
	// A generous ceiling: the bound is 100 ms, tls.Conn's own 5 s.
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("close took %v with a peer that reads nothing; want about %v", took, closeNotifyWait)
	}
}

//go:build unix

package logsock_test

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/logsocktest"
)

// TestServerV2AcksUnread: a client that never reads its acknowledgements
// is closed, ReasonAcksUnread, once the collector's writes have waited
// HandshakeTimeout; a bystander is unharmed.
func TestServerV2AcksUnread(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			handled := make(chan struct{}, 1)
			log, _, addr, by := hostileServer(t, network, func(s *logsock.Server) {
				s.HandshakeTimeout = 500 * time.Millisecond
				record := s.Handler
				s.Handler = func(r *logsock.Record) {
					if r.Session == (logsock.SessionID{}) {
						record(r) // the bystander's: the client's would pile up
						return
					}
					handled <- struct{}{}
				}
			})
			// A client whose receive buffer is small: Linux's autotuning
			// would grow it to hold 6 MiB of acknowledgements first.
			d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
				rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
				return nil
			}}
			c, err := d.Dial(network, addr)
			if err != nil {
				t.Fatal(err)
			}
			v := &v2Client{t: t, c: c}
			c.Write(logsock.AppendHello(nil, logsock.LittleEndian, int32(os.Getpid()), newSession(t), 1, "svc"))
			v.readHello()
			stop, done := make(chan struct{}), make(chan struct{})
			defer func() { close(stop); <-done }()
			go func() {
				defer close(done)
				// A frame a read: the next is written once the Handler has
				// this one, so each read brings the collector one frame, and
				// its acknowledgement, whatever the machine's load.
				for seq := uint64(1); ; seq++ {
					if _, err := v.c.Write(frame2(seq)); err != nil {
						return
					}
					select {
					case <-handled:
					case <-stop:
						return
					}
				}
			}()
			end := log.waitEnd(t, "the client that reads nothing", func(i logsock.ConnInfo) bool { return i.Conn != by.id })
			if end.info.Reason != logsock.ReasonAcksUnread {
				t.Errorf("ended %v (%v), want %v", end.info.Reason, end.err, logsock.ReasonAcksUnread)
			}
			by.check(t)
		})
	}
}

// TestServerV2ShutdownCutsWrite: Shutdown's deadline ends a v2
// connection whose acknowledgement waits for room, as it ends a read,
// rather than after HandshakeTimeout (a minute here).
func TestServerV2ShutdownCutsWrite(t *testing.T) {
	handled := make(chan struct{}, 1)
	srv := &logsock.Server{HandshakeTimeout: time.Minute, Handler: func(*logsock.Record) { handled <- struct{}{} }}
	l := logsocktest.Listen(t, "unix")
	logsocktest.ServeOn(t, srv, l)
	logsocktest.WaitServing(t, l)
	c := logsocktest.RawConn(t, "unix", l.Addr().String(), logsock.AppendHello(nil, logsock.LittleEndian, int32(os.Getpid()), newSession(t), 1, "svc"))
	// A frame a read, until the Server stops taking them: its
	// acknowledgement waits for room that the client never makes.
	for seq := uint64(1); ; seq++ {
		if _, err := c.Write(frame2(seq)); err != nil {
			t.Fatal(err)
		}
		select {
		case <-handled:
			continue
		case <-time.After(time.Second):
		}
		break
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want the deadline's error", err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("Shutdown took %v, with a deadline of 200 ms", took)
	}
}

//go:build unix

package logsock_test

import (
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/logsocktest"
)

// TestServerV2AcksUnread: a client that never reads its acknowledgements
// is closed, ReasonAcksUnread, once the collector's writes have waited
// HandshakeTimeout; a bystander is unharmed. The collector's socket gets
// the smallest send buffer that the kernel allows once the hello is
// answered (over TCP the Server has given it 16 KiB then): the
// acknowledgements that fill the buffers come at most one every 2 ms, and
// filling 16 KiB took 2.5 s of the test's 5 s here, and more than 20 s
// beside parallel tests under the race detector and two CPU hogs (stress
// run). Not in parallel with other tests, for that reason too.
func TestServerV2AcksUnread(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			t.Parallel() // with each other only
			handled := make(chan struct{}, 1)
			log := newConnLog()
			srv := log.Server()
			srv.MaxFrame = hostileMaxFrame
			srv.HandshakeTimeout = 500 * time.Millisecond
			srv.Handler = func(r *logsock.Record) {
				if r.Session == (logsock.SessionID{}) {
					log.Handle(r) // the bystander's: the client's would pile up
					return
				}
				handled <- struct{}{}
			}
			l := logsocktest.Listen(t, network)
			accepted := &acceptedConns{Listener: l}
			logsocktest.ServeOn(t, srv, accepted)
			logsocktest.WaitServing(t, l)
			addr := l.Addr().String()
			by := newBystander(t, log, network, addr)
			// A client whose receive buffer is the smallest the kernel
			// allows: Linux's autotuning would grow it to hold 6 MiB of
			// acknowledgements first.
			d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
				rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1) })
				return nil
			}}
			c, err := d.Dial(network, addr)
			if err != nil {
				t.Fatal(err)
			}
			v := &v2Client{t: t, c: c}
			c.Write(logsock.AppendHello(nil, logsock.LittleEndian, int32(os.Getpid()), newSession(t), 1, "svc"))
			v.readHello()
			accepted.shrinkSendBuffers(t)
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

// TestServerV2AcksNeverStallReads: a collector whose acknowledgements find
// no room goes on reading, and keeps the newest for later, so that a
// client busy writing (as direct mode is, between its reads of the
// acknowledgements) never deadlocks with it: 5,000 frames, one a read,
// from a client that reads nothing until the end, all arrive, and then
// the last acknowledgement does. With writes that waited for room, the
// Server stopped after some hundreds (issue 19: TestAcksCrashUnderLoad
// stalled for a minute).
func TestServerV2AcksNeverStallReads(t *testing.T) {
	t.Parallel()
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			handled := make(chan struct{}, 1)
			srv := &logsock.Server{HandshakeTimeout: time.Minute, Handler: func(*logsock.Record) { handled <- struct{}{} }}
			addr := logsocktest.Serve(t, network, srv)
			d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
				rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
				return nil
			}}
			c, err := d.Dial(network, addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			v := &v2Client{t: t, c: c}
			c.Write(logsock.AppendHello(nil, logsock.LittleEndian, int32(os.Getpid()), newSession(t), 1, "svc"))
			v.readHello()
			const n = 5000
			for seq := uint64(1); seq <= n; seq++ {
				if _, err := c.Write(frame2(seq)); err != nil {
					t.Fatal(err)
				}
				select {
				case <-handled:
				case <-time.After(20 * time.Second):
					t.Fatalf("frame %d not handled in 20 s: the collector stopped reading", seq)
				}
			}
			v.waitAck(n)
		})
	}
}

// acceptedConns is a listener that keeps the connections it accepts. Its
// SyscallConn is the listener's, for the Server's SO_PASSCRED.
type acceptedConns struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func (l *acceptedConns) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

func (l *acceptedConns) SyscallConn() (syscall.RawConn, error) {
	return l.Listener.(syscall.Conn).SyscallConn()
}

// shrinkSendBuffers gives the sockets accepted so far the smallest send
// buffer (SO_SNDBUF) that the kernel allows.
func (l *acceptedConns) shrinkSendBuffers(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		rc, err := c.(syscall.Conn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var serr error
		if err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, 1) }); err != nil {
			t.Fatal(err)
		}
		if serr != nil {
			t.Fatal(os.NewSyscallError("setsockopt SO_SNDBUF", serr))
		}
	}
}

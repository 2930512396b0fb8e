//go:build linux

package logsock_test

import (
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/logsocktest"
	"github.com/logsock/logsock/internal/proctest"
)

// TestServerPeerCreds: on a Unix socket, records and ConnInfo carry the
// connecting process's pid, uid and gid, and each frame its writer's pid;
// on TCP they are all 0.
func TestServerPeerCreds(t *testing.T) {
	pid, uid, gid := int32(os.Getpid()), uint32(os.Getuid()), uint32(os.Getgid())
	for _, tc := range []struct {
		network          string
		peer, writer     int32
		peerUid, peerGid uint32
	}{
		{"unix", pid, pid, uid, gid},
		{"tcp", 0, 0, 0, 0},
	} {
		t.Run(tc.network, func(t *testing.T) {
			log := newConnLog()
			addr := logsocktest.Serve(t, tc.network, log.Server())
			c := logsocktest.RawConn(t, tc.network, addr, logsocktest.Frames(0, pid, "who am I"))
			r := log.waitMsg(t, "who am I")
			if r.Pid != pid || r.PeerPid != tc.peer || r.PeerUid != tc.peerUid || r.PeerGid != tc.peerGid ||
				r.WriterPid != tc.writer || r.Flags != 0 {
				t.Errorf("record %+v: want peer %d (uid %d gid %d), writer %d, no flags", r, tc.peer, tc.peerUid, tc.peerGid, tc.writer)
			}
			c.Close()
			end := log.waitConnEnd(t, r.Conn)
			if i := end.info; i.Pid != pid || i.PeerPid != tc.peer || i.PeerUid != tc.peerUid || i.PeerGid != tc.peerGid {
				t.Errorf("ConnInfo %+v: want peer %d (uid %d gid %d)", i, tc.peer, tc.peerUid, tc.peerGid)
			}
		})
	}
}

// heldListener holds Accept until the gate opens. Without SyscallConn,
// the Server cannot set SO_PASSCRED on it, only on the accepted sockets.
type heldListener struct {
	net.Listener
	gate chan struct{}
}

func (h *heldListener) Accept() (net.Conn, error) {
	<-h.gate
	return h.Listener.Accept()
}

type heldRawListener struct{ *heldListener }

func (h heldRawListener) SyscallConn() (syscall.RawConn, error) {
	return h.Listener.(syscall.Conn).SyscallConn()
}

// TestServerCredsBeforeAccept: frames sent before the Server accepts the
// connection carry their writer's pid too, whether the listener has
// SO_PASSCRED or only the accepted socket (the kernel attaches
// credentials while the receiving socket is not yet accepted).
func TestServerCredsBeforeAccept(t *testing.T) {
	t.Parallel()
	pid := int32(os.Getpid())
	for _, raw := range []bool{true, false} {
		t.Run(map[bool]string{true: "listener", false: "accepted socket"}[raw], func(t *testing.T) {
			log := newConnLog()
			srv := log.Server()
			h := &heldListener{Listener: logsocktest.Listen(t, "unix"), gate: make(chan struct{})}
			var l net.Listener = h
			if raw {
				l = heldRawListener{h}
			}
			served := make(chan error, 1)
			go func() { served <- srv.Serve(l) }()
			c := logsocktest.RawConn(t, "unix", h.Addr().String(), logsocktest.Frames(0, pid, "before accept 1", "before accept 2"))
			close(h.gate)
			log.waitMsg(t, "before accept 2")
			if _, err := c.Write(frameOf("after accept")); err != nil {
				t.Fatal(err)
			}
			log.waitMsg(t, "after accept")
			for _, r := range log.WaitRecords(t, 3) {
				if r.WriterPid != pid || r.Flags != 0 {
					t.Errorf("record %q: WriterPid %d flags %v, want %d and none", r.Msg, r.WriterPid, r.Flags, pid)
				}
			}
			if err := srv.Shutdown(t.Context()); err != nil {
				t.Fatal(err)
			}
			if err := <-served; !errors.Is(err, logsock.ErrServerClosed) {
				t.Fatalf("Serve: %v", err)
			}
		})
	}
}

// TestServerInheritedWriterPid: a child that inherits the parent's
// connection (LogSocket.Start) writes frames whose WriterPid is the
// child's, on a connection whose handshake and peer are the parent: no
// mismatch, no torn frame.
func TestServerInheritedWriterPid(t *testing.T) {
	log := newConnLog()
	srv := log.Server()
	addr := logsocktest.Serve(t, "unix", srv)
	// Serve is running once it has delivered a record: the listener has
	// SO_PASSCRED, which new connections take from it at connect.
	newBystander(t, log, "unix", addr)
	parent := int32(os.Getpid())
	ls := dial(t, "unix", addr, &logsock.Config{PeekInterval: time.Nanosecond})
	if err := ls.Log("parent 1"); err != nil {
		t.Fatal(err)
	}
	log.waitMsg(t, "parent 1")
	ch := proctest.StartChild(t, ls.Start, "commands")
	ch.Must(t, "log child 1")
	log.waitMsg(t, "child 1")
	if err := ls.Log("parent 2"); err != nil {
		t.Fatal(err)
	}
	log.waitMsg(t, "parent 2")
	ch.Must(t, "log child 2")
	log.waitMsg(t, "child 2")
	child := int32(ch.Cmd.Process.Pid)
	recs := log.WaitRecords(t, 5)[1:] // after the bystander's
	for _, r := range recs {
		writer := map[bool]int32{true: child, false: parent}[string(r.Msg[:5]) == "child"]
		if r.Conn != recs[0].Conn || r.Pid != parent || r.PeerPid != parent || r.WriterPid != writer || r.Flags != 0 {
			t.Errorf("record %q: conn %d pid %d peer %d writer %d flags %v; want conn %d, pid and peer %d, writer %d, no flags",
				r.Msg, r.Conn, r.Pid, r.PeerPid, r.WriterPid, r.Flags, recs[0].Conn, parent, writer)
		}
	}
	ch.Wait(t)
	if st := srv.Stats(); st.PidMismatch != 0 || st.MixedWriters != 0 {
		t.Errorf("Stats %+v: want no mismatch and no mixed writers", st)
	}
}

// TestServerPidMismatch: a handshake that names another pid (1) than the
// peer's is flagged on every record and counted once; with
// RejectPidMismatch the connection is closed after the handshake, and
// nothing it sent is delivered. On TCP the kernel tells no peer pid.
func TestServerPidMismatch(t *testing.T) {
	for _, tc := range []struct {
		network string
		reject  bool
	}{{"unix", false}, {"unix", true}, {"tcp", true}} {
		t.Run(tc.network+map[bool]string{true: "/reject", false: ""}[tc.reject], func(t *testing.T) {
			log, srv, addr, by := hostileServer(t, tc.network, func(s *logsock.Server) { s.RejectPidMismatch = tc.reject })
			c := logsocktest.RawConn(t, tc.network, addr, logsocktest.Frames(0, 1, "I am init", "still init"))
			c.Close()
			end := log.waitEnd(t, "the liar's end", func(i logsock.ConnInfo) bool { return i.Conn != by.id })
			recs := log.recordsOf(end.info.Conn)
			mismatch := tc.network == "unix"
			switch {
			case mismatch && tc.reject:
				checkEnd(t, end, logsock.ReasonPidMismatch, errAny, "")
				if len(recs) != 0 {
					t.Errorf("a rejected connection delivered %q", msgs(recs))
				}
			default:
				checkEnd(t, end, logsock.ReasonEOF, nil, "")
				if len(recs) != 2 {
					t.Errorf("delivered %q, want 2 records", msgs(recs))
				}
			}
			want := logsock.Flags(0)
			if mismatch {
				want = logsock.FlagPidMismatch
			}
			for _, r := range recs {
				if r.Pid != 1 || r.Flags != want {
					t.Errorf("record %q: pid %d flags %v, want pid 1 and %v", r.Msg, r.Pid, r.Flags, want)
				}
			}
			if st := srv.Stats(); st.PidMismatch != map[bool]uint64{true: 1, false: 0}[mismatch] {
				t.Errorf("Stats %+v: want PidMismatch %v", st, mismatch)
			}
			by.check(t)
			for _, r := range log.recordsOf(by.id) {
				if r.Flags != 0 {
					t.Errorf("bystander record %q flagged %v", r.Msg, r.Flags)
				}
			}
		})
	}
}

// TestServerMixedWriters: two processes write one connection's frames in
// parts, without the lock. A frame whose bytes both wrote is flagged, and
// attributed to its header's writer; whole frames keep their own writer;
// and when the tear puts a length inside a message, the connection ends
// with a bad length. (The child is a shell, whose printf is one write.)
func TestServerMixedWriters(t *testing.T) {
	log, srv, addr, by := hostileServer(t, "unix", nil)
	parent := int32(os.Getpid())
	c := logsocktest.RawConn(t, "unix", addr, cat(logsock.AppendHandshake(nil, 0, parent), le(10), "AAAAA"))
	sock := os.NewFile(uintptr(dupConn(t, c)), "socket")
	defer sock.Close()
	childWrites := func(printf string) int32 {
		t.Helper()
		cmd := exec.Command("/bin/sh", "-c", "printf '"+printf+"' >&3")
		cmd.ExtraFiles = []*os.File{sock}
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("child: %v", err)
		}
		return int32(cmd.Process.Pid)
	}
	child := childWrites(`BBBBB\003\000\000\000CCC`) // the rest of the parent's frame, and a whole frame
	if _, err := c.Write(cat(le(2), "DD", le(12), "EEEE")); err != nil {
		t.Fatal(err)
	}
	child2 := childWrites(`FFFFFFFF\377\377\377\377GGGG`) // the rest of EEEE's frame, then what reads as a length
	end := log.waitEnd(t, "the torn connection's end", func(i logsock.ConnInfo) bool { return i.Conn != by.id })
	checkEnd(t, end, logsock.ReasonBadLength, logsock.ErrNegativeLength, `"\xff\xff\xff\xff"`)

	want := []struct {
		msg    string
		writer int32
		flags  logsock.Flags
	}{
		{"AAAAABBBBB", parent, logsock.FlagMixedWriters},
		{"CCC", child, 0},
		{"DD", parent, 0},
		{"EEEEFFFFFFFF", parent, logsock.FlagMixedWriters},
	}
	recs := log.recordsOf(end.info.Conn)
	if len(recs) != len(want) {
		t.Fatalf("delivered %q, want %d records", msgs(recs), len(want))
	}
	for i, w := range want {
		if r := recs[i]; string(r.Msg) != w.msg || r.WriterPid != w.writer || r.Flags != w.flags || r.Pid != parent {
			t.Errorf("record %d: %q writer %d flags %v; want %q writer %d flags %v (child pids %d, %d)",
				i, r.Msg, r.WriterPid, r.Flags, w.msg, w.writer, w.flags, child, child2)
		}
	}
	if st := srv.Stats(); st.MixedWriters != 2 {
		t.Errorf("Stats %+v: want 2 mixed frames", st)
	}
	by.check(t)
}

// TestServerReadAllocs: once warm, the Server reads, attributes, checks
// and hands over frames without allocating, with credentials (Unix) and
// an IdleTimeout to arm on every wait; in v2 too, with the frames'
// numbers, the acknowledgements, and a Handler that defers. The bursts
// fit the Decoder's first, pooled buffer: one that grew to a size between
// the two pooled ones is made anew after each idle spell (a Decoder
// matter, not the Server's).
func TestServerReadAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	for _, network := range []string{"unix", "tcp"} {
		for _, proto := range []string{"v1", "v2", "v2 deferred"} {
			t.Run(network+"/"+proto, func(t *testing.T) {
				const batch = 30 // 3 KiB a burst
				var n atomic.Int64
				got := make(chan struct{}, 1)
				srv := &logsock.Server{IdleTimeout: time.Minute, Handler: func(r *logsock.Record) {
					if proto == "v2 deferred" {
						r.Defer().Done()
					}
					if n.Add(1)%batch == 0 {
						got <- struct{}{}
					}
				}}
				addr := logsocktest.Serve(t, network, srv)
				msg := make([]byte, 96)
				var chunk []byte
				var seq uint64
				next := func() {
					chunk = chunk[:0]
					for range batch {
						if proto == "v1" {
							chunk = logsock.AppendFrame(chunk, logsock.LittleEndian, msg)
						} else {
							seq++
							chunk = logsock.AppendFrame2(chunk, logsock.LittleEndian, seq, 0, 6, msg)
						}
					}
				}
				var c net.Conn
				if proto == "v1" {
					c = logsocktest.RawConn(t, network, addr, logsock.AppendHandshake(nil, 0, int32(os.Getpid())))
				} else {
					c = dialV2(t, network, addr, newSession(t), 1, "allocs").c
					go io.Copy(io.Discard, c) // the acknowledgements
				}
				send := func() {
					next()
					if _, err := c.Write(chunk); err != nil {
						t.Fatal(err)
					}
					<-got
				}
				send()
				send()
				// A collection would empty the buffer pools, and the next read
				// would allocate a buffer again.
				defer debug.SetGCPercent(debug.SetGCPercent(-1))
				if allocs := testing.AllocsPerRun(200, send); allocs > 0 {
					t.Errorf("%v allocations a batch of %d frames, want 0", allocs, batch)
				}
			})
		}
	}
}

// TestServerV2PidCheck: a v2 hello's pid is checked as v1's handshake is:
// one that is not the peer's flags the records (whose WriterPid is still
// the writer's), or, with RejectPidMismatch, is answered "bad hello" and
// closed, ReasonPidMismatch.
func TestServerV2PidCheck(t *testing.T) {
	for _, reject := range []bool{false, true} {
		t.Run(map[bool]string{true: "reject", false: "flag"}[reject], func(t *testing.T) {
			log, _, addr, by := hostileServer(t, "unix", func(s *logsock.Server) { s.RejectPidMismatch = reject })
			v := &v2Client{t: t, c: logsocktest.RawConn(t, "unix", addr, logsock.AppendHello(nil, logsock.LittleEndian, 1, newSession(t), 1, "liar"))}
			v.readHello()
			if reject {
				if v.status != 2 {
					t.Errorf("status %d, want 2", v.status)
				}
				end := log.waitEnd(t, "the liar's end", func(i logsock.ConnInfo) bool { return i.Conn != by.id })
				checkEnd(t, end, logsock.ReasonPidMismatch, errAny, "")
				return
			}
			v.send(1, 2)
			v.waitAck(2)
			conn := log.waitMsg(t, "m2").Conn
			for _, r := range log.recordsOf(conn) {
				if r.Pid != 1 || r.Flags != logsock.FlagPidMismatch || r.WriterPid != int32(os.Getpid()) || r.Tag != "liar" {
					t.Errorf("record %q: pid %d flags %v writer %d tag %q", r.Msg, r.Pid, r.Flags, r.WriterPid, r.Tag)
				}
			}
			by.check(t)
		})
	}
}

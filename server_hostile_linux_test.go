package logsock_test

import (
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/logsocktest"
)

// waitRead waits until the Server has read all that c sent: on a Unix
// socket, SIOCOUTQ counts what the peer has not yet read.
func waitRead(t testing.TB, c net.Conn) {
	t.Helper()
	fd := connFD(t, c)
	for deadline := time.Now().Add(20 * time.Second); ; {
		n, err := unix.IoctlGetInt(fd, unix.SIOCOUTQ)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Server left %d bytes unread", n)
		}
		time.Sleep(20 * time.Microsecond) // polling: there is no signal for "read"
	}
}

// TestHostileOneBytePerWrite: a stream sent one byte a write, each read by
// the Server on its own (on the Unix socket), gives the same records as
// the stream sent in one write.
func TestHostileOneBytePerWrite(t *testing.T) {
	t.Parallel()
	pid := int32(os.Getpid())
	stream := logsocktest.Frames(0, pid, "first", "", "로그 메시지", strings.Repeat("z", 300), "\xff not text", "last")
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			log, _, addr, by := hostileServer(t, network, nil)
			whole := logsocktest.RawConn(t, network, addr, stream)
			whole.Close()
			wholeEnd := log.waitEnd(t, "the whole stream's end", func(i logsock.ConnInfo) bool { return i.Conn != by.id })

			slow := logsocktest.RawConn(t, network, addr)
			for i := range stream {
				if _, err := slow.Write(stream[i : i+1]); err != nil {
					t.Fatal(err)
				}
				if network == "unix" {
					waitRead(t, slow)
				}
			}
			slow.Close()
			slowEnd := log.waitEnd(t, "the slow stream's end", func(i logsock.ConnInfo) bool {
				return i.Conn != by.id && i.Conn != wholeEnd.info.Conn
			})
			checkEnd(t, wholeEnd, logsock.ReasonEOF, nil, "")
			checkEnd(t, slowEnd, logsock.ReasonEOF, nil, "")
			a, b := log.recordsOf(wholeEnd.info.Conn), log.recordsOf(slowEnd.info.Conn)
			if len(a) != 6 || len(b) != len(a) {
				t.Fatalf("%d and %d records, want 6", len(a), len(b))
			}
			for i := range a {
				if string(a[i].Msg) != string(b[i].Msg) || a[i].Flags != b[i].Flags || a[i].Pid != b[i].Pid ||
					a[i].WriterPid != b[i].WriterPid || a[i].PeerPid != b[i].PeerPid {
					t.Errorf("record %d: one byte a write %+v, one write %+v", i, b[i], a[i])
				}
				if network == "unix" && b[i].WriterPid != pid {
					t.Errorf("record %d: WriterPid %d, want %d", i, b[i].WriterPid, pid)
				}
			}
			by.check(t)
		})
	}
}

// TestHostileManyPartialFrames: a thousand connections each hold all but
// the last byte of a frame of the limit's size. Each costs the limit and a
// constant, no more; then they end truncated, and a bystander is unharmed.
func TestHostileManyPartialFrames(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes memory use")
	}
	const n = 1000
	log, srv, addr, by := hostileServer(t, "unix", nil)
	partial := cat(logsock.AppendHandshake(nil, 0, int32(os.Getpid())), le(hostileMaxFrame), strings.Repeat("p", hostileMaxFrame-1))
	before := memFigures()
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = logsocktest.RawConn(t, "unix", addr, partial)
	}
	for _, c := range conns {
		waitRead(t, c)
	}
	after := memFigures()
	per := (int64(after.heap) - int64(before.heap)) / n
	t.Logf("%d connections holding %d of %d bytes of a frame: %d bytes each (heap and stacks, both ends); RSS %+.1f MiB",
		n, hostileMaxFrame-1, hostileMaxFrame, per, float64(int64(after.rss)-int64(before.rss))/(1<<20))
	// The constant: an idle connection's 6 KiB or so, and the heap's
	// rounding of the limit plus a header to whole 8 KiB pages.
	if bound := int64(hostileMaxFrame + 24<<10); per > bound {
		t.Errorf("%d bytes a connection, want under %d (the limit and 24 KiB)", per, bound)
	}
	if st := srv.Stats(); st.Active != n+1 {
		t.Errorf("Stats %+v: want %d active", st, n+1)
	}
	for _, c := range conns {
		c.Close()
	}
	log.Wait(t, "the truncated ends", func([]logsock.Record, []error) bool {
		return len(log.endsWith(logsock.ReasonTruncated)) == n
	})
	if got := len(log.recordsOf(by.id)); got != by.sent {
		t.Errorf("records: the bystander's %d only, want %d", got, by.sent)
	}
	by.check(t)
}

// TestServerBufferGrowsWithArrivals: a header that declares a frame of the
// limit (16 MiB here) costs the Server the bytes that arrived, not the
// bytes declared.
func TestServerBufferGrowsWithArrivals(t *testing.T) {
	log, _, addr, by := hostileServer(t, "unix", func(s *logsock.Server) { s.MaxFrame = 16 << 20 })
	var before, after runtimeMem
	before.read()
	c := logsocktest.RawConn(t, "unix", addr, cat(logsock.AppendHandshake(nil, 0, 1), le(16<<20), strings.Repeat("x", 100)))
	waitRead(t, c)
	after.read()
	if grew := after.total - before.total; grew > 64<<10 {
		t.Errorf("a 16 MiB frame of which 100 bytes arrived cost %d bytes, want under 64 KiB", grew)
	}
	c.Close()
	end := log.waitEnd(t, "the end", func(i logsock.ConnInfo) bool { return i.Conn != by.id })
	checkEnd(t, end, logsock.ReasonTruncated, io.ErrUnexpectedEOF, "")
	by.check(t)
}

// TestHostilePassedFDs: a client that passes descriptors (SCM_RIGHTS)
// with its frames cannot fill the collector's descriptor table: the
// Server closes what the kernel installs, and the frames arrive.
func TestHostilePassedFDs(t *testing.T) {
	log, _, addr, by := hostileServer(t, "unix", nil)
	c := logsocktest.RawConn(t, "unix", addr, logsock.AppendHandshake(nil, 0, int32(os.Getpid())))
	f, err := os.CreateTemp("", "passed")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	fd := int(f.Fd())
	const frames = 50
	rights := unix.UnixRights(fd, fd, fd, fd, fd) // more than the Server's control buffer holds
	for i := range frames {
		if err := unix.Sendmsg(connFD(t, c), frameOf(fmt.Sprint("with descriptors ", i)), rights, nil, 0); err != nil {
			t.Fatal(err)
		}
	}
	// The last frame's record comes after the read that brought its
	// descriptors, and after they were closed.
	log.waitMsg(t, fmt.Sprint("with descriptors ", frames-1))
	if n := descriptorsOf(t, f.Name()); n != 1 {
		t.Errorf("%d descriptors of the passed file open, want 1 (the client's own)", n)
	}
	by.check(t)
}

// descriptorsOf counts this process's descriptors of the file at path.
func descriptorsOf(t *testing.T, path string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	n := 0
	for _, e := range ents {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && target == path {
			n++
		}
	}
	return n
}

// figures are a process's resources at a moment.
type figures struct {
	heap       uint64 // Go heap and stacks in use, after a GC
	heapOnly   uint64 // the heap alone
	stacks     uint64 // the goroutines' stacks alone
	rss        uint64 // resident set, bytes
	goroutines int
	fds        int
}

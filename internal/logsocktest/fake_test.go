package logsocktest_test

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/logsocktest"
)

// TestFakeCollector checks that each mode does what the tests that use
// the fake collector rely on.
func TestFakeCollector(t *testing.T) {
	t.Parallel()
	pid := int32(os.Getpid())
	for _, network := range []string{"tcp", "unix"} {
		// What a dial meets where nothing listens.
		refused := map[string]error{"tcp": logsocktest.ErrConnRefused, "unix": syscall.ENOENT}[network]
		mustRead := func(t *testing.T, c net.Conn, want error) {
			t.Helper()
			if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, want) {
				t.Errorf("client read %d, %v; want %v", n, err, want)
			}
		}
		t.Run(network+"/decode", func(t *testing.T) {
			f := logsocktest.NewFakeCollector(t, network, logsocktest.FakeDecode)
			before := time.Now()
			c1 := logsocktest.RawConn(t, network, f.Addr, logsocktest.Frames(0, pid, "one", "two"))
			c2 := logsocktest.RawConn(t, network, f.Addr, logsocktest.Frames(0, pid+1, "three"))
			recs := f.WaitRecords(t, 3)
			conns := f.WaitConns(t, 2)
			if at := conns[0].Accepted; at.Before(before) || at.After(time.Now()) || conns[1].Accepted.Before(at) {
				t.Errorf("accepted at %v and %v, test began %v", at, conns[1].Accepted, before)
			}
			slices.SortFunc(recs, func(a, b logsock.Record) int { return cmp.Compare(a.Conn, b.Conn) })
			if len(recs) != 3 || string(recs[0].Msg) != "one" || string(recs[1].Msg) != "two" || string(recs[2].Msg) != "three" ||
				recs[0].Conn != 1 || recs[1].Conn != 1 || recs[2].Conn != 2 ||
				recs[0].Pid != pid || recs[2].Pid != pid+1 {
				t.Errorf("records %s", logsocktest.FormatRecords(recs))
			}
			f.CloseConn(1)
			mustRead(t, c1, io.EOF)
			if end := f.WaitConnEnd(t, 1); !errors.Is(end.Err, net.ErrClosed) {
				t.Errorf("connection 1 ended with %v, want net.ErrClosed", end.Err)
			}
			f.DropAll()
			mustRead(t, c2, io.EOF)
			if n := f.StopAccepting(); n != 2 {
				t.Errorf("StopAccepting: %d accepted, want 2", n)
			}
			if _, err := net.Dial(network, f.Addr); !errors.Is(err, refused) {
				t.Errorf("dial after StopAccepting: %v, want %v", err, refused)
			}
		})
		t.Run(network+"/flapping", func(t *testing.T) {
			f := logsocktest.FakeDown(t, network, logsocktest.FakeDecode)
			for round := range 2 {
				if _, err := net.Dial(network, f.Addr); !errors.Is(err, refused) {
					t.Errorf("dial while down: %v, want %v", err, refused)
				}
				f.Start(t)
				c := logsocktest.RawConn(t, network, f.Addr, logsocktest.Frames(0, pid, fmt.Sprint("up ", round)))
				if r := f.WaitRecords(t, round+1)[round]; string(r.Msg) != fmt.Sprint("up ", round) || r.Conn != uint64(round+1) {
					t.Errorf("record %+v", r)
				}
				f.Stop()
				mustRead(t, c, io.EOF)
			}
		})
		t.Run(network+"/discard", func(t *testing.T) {
			f := logsocktest.NewFakeCollector(t, network, logsocktest.FakeDiscard)
			c := logsocktest.RawConn(t, network, f.Addr, logsocktest.Frames(0, pid), make([]byte, 1<<20))
			c.Close()
			if end := f.WaitConnEnd(t, 1); end.Err != nil || len(f.WaitRecords(t, 0)) != 0 {
				t.Errorf("end %v, records %d: want a clean end, none", end.Err, len(f.WaitRecords(t, 0)))
			}
		})
		t.Run(network+"/close", func(t *testing.T) {
			f := logsocktest.NewFakeCollector(t, network, logsocktest.FakeClose)
			c := logsocktest.RawConn(t, network, f.Addr)
			mustRead(t, c, io.EOF)
			f.WaitConnEnd(t, 1)
		})
		t.Run(network+"/handshake-close", func(t *testing.T) {
			f := logsocktest.NewFakeCollector(t, network, logsocktest.FakeHandshakeClose)
			c := logsocktest.RawConn(t, network, f.Addr, logsocktest.Frames(0, pid))
			if got := f.WaitHandshake(t, 1); got != pid {
				t.Errorf("handshake %d, want %d", got, pid)
			}
			mustRead(t, c, io.EOF)
		})
		t.Run(network+"/stall", func(t *testing.T) {
			// 24 MiB of 64 KiB frames: more than the kernel buffers of a
			// loopback connection hold (tcp_rmem and tcp_wmem are 6 MiB
			// and 4 MiB at most by default; a Unix socket's, 208 KiB).
			const size, n = 64 << 10, 384
			f := logsocktest.NewFakeCollector(t, network, logsocktest.FakeStall)
			stream := logsocktest.Frames(0, pid)
			for range n {
				stream = logsocktest.AppendFrame(stream, logsock.LittleEndian, make([]byte, size))
			}
			c := logsocktest.RawConn(t, network, f.Addr)
			c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			written, err := c.Write(stream)
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("write to a stalled collector: %d of %d bytes, %v; want a timeout", written, len(stream), err)
			}
			f.Resume()
			whole := (written - logsocktest.HeaderLen) / (logsocktest.HeaderLen + size)
			if whole == 0 {
				t.Fatalf("%d bytes written: not one whole frame", written)
			}
			if recs := f.WaitRecords(t, whole); len(recs[0].Msg) != size {
				t.Errorf("record of %d bytes, want %d", len(recs[0].Msg), size)
			}
		})
		t.Run(network+"/backlog", func(t *testing.T) {
			f := logsocktest.NewFakeCollector(t, network, logsocktest.FakeBacklog) // checks the dial too
			if conns := f.Connections(); len(conns) != 0 {
				t.Errorf("%d connections accepted", len(conns))
			}
			f.Stop()
			if _, err := net.Dial(network, f.Addr); !errors.Is(err, refused) {
				t.Errorf("dial after stop: %v, want %v", err, refused)
			}
		})
	}
}

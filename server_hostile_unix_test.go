//go:build unix

package logsock_test

import (
	"os"
	"syscall"
	"testing"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/logsocktest"
)

// TestHostileInterleavedWriters: two descriptors of one socket write
// frames without the lock, in parts, so that the stream tears: the first
// frame swallows the second's header, and a length is read from inside a
// message. The connection ends with a bad length, after the torn frame.
func TestHostileInterleavedWriters(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			log, _, addr, by := hostileServer(t, network, nil)
			c := logsocktest.RawConn(t, network, addr)
			other := dupConn(t, c)
			write := func(fd int, b []byte) {
				t.Helper()
				if _, err := syscall.Write(fd, b); err != nil {
					t.Fatal(err)
				}
			}
			fd := connFD(t, c)
			write(fd, cat(logsock.AppendHandshake(nil, 0, int32(os.Getpid())), le(20), "aaaaaaaaaa")) // writer A: half a frame
			write(other, cat(le(20), "bbbbbb\xff\xff\xff\xffbbbbbbbbbb"))                             // writer B: a whole frame
			syscall.Write(fd, []byte("aaaaaaaaaa"))                                                   // A's other half: EPIPE once the Server has seen the tear
			c.Close()
			syscall.Close(other)
			end := log.waitEnd(t, "the torn connection's end", func(i logsock.ConnInfo) bool { return i.Conn != by.id })
			if r := end.info.Reason; r != logsock.ReasonBadLength && r != logsock.ReasonFrameTooLarge {
				t.Errorf("reason %v (%v), want a bad length or a frame too large", r, end.err)
			}
			if got := msgs(log.recordsOf(end.info.Conn)); len(got) != 1 || got[0] != "aaaaaaaaaa\x14\x00\x00\x00bbbbbb" {
				t.Errorf("delivered %q, want the one torn frame", got)
			}
			by.check(t)
		})
	}
}

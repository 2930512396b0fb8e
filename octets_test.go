package logsock_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/logsocktest"
)

// octetMessages are messages of every kind of length an octet count can
// have, and the bytes a syslog message may hold: spaces, digits, newlines,
// non-ASCII and invalid UTF-8.
func octetMessages(n int) [][]byte {
	sizes := []int{0, 1, 9, 10, 11, 99, 100, 101, 999, 1000, 2041, 2047, 2048, 5000, 70000}
	out := make([][]byte, n)
	for i := range out {
		prefix := fmt.Sprintf("<14>1 - host app %d - - né\n9 \xff", i)
		msg := []byte(prefix)
		for len(msg) < sizes[i%len(sizes)] {
			msg = append(msg, "0 1 22 333 "[len(msg)%11])
		}
		out[i] = msg
	}
	return out
}

// TestOctetCountedFraming: a NewSyslog LogSocket, in both
// modes, a LogSocket sends each message behind its octet count, with no
// handshake, to a syslog server, and keeps logsock's delivery: the server
// closes the connection mid-stream (a graceful restart) and every message
// arrives, whole and in order, on one connection or the next, each
// counted once in Stats.
func TestOctetCountedFraming(t *testing.T) {
	unixOnly(t, "no peek (Config.PeekInterval)")
	for _, batching := range []bool{false, true} {
		t.Run(fmt.Sprintf("batching=%v", batching), func(t *testing.T) {
			col := logsocktest.NewFakeCollector(t, "tcp", logsocktest.FakeSyslog)
			ls, err := logsock.NewSyslog("tcp", col.Addr, &logsock.Config{Batching: batching,
				PeekInterval: time.Nanosecond, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer ls.Close()
			msgs := octetMessages(60)
			total := 0
			for i, m := range msgs {
				if i == len(msgs)/2 {
					flush(t, ls)
					col.WaitRecords(t, i)
					col.DropAll()
				}
				if _, err := ls.Write(m); err != nil {
					t.Fatal(err)
				}
				total += len(m)
			}
			flush(t, ls)
			recs := col.WaitRecords(t, len(msgs))
			if len(recs) != len(msgs) {
				t.Fatalf("%d records, want %d", len(recs), len(msgs))
			}
			for i, r := range recs {
				if !bytes.Equal(r.Msg, msgs[i]) {
					t.Fatalf("record %d on conn %d: %q, want %q", i, r.Conn, short(r.Msg), short(msgs[i]))
				}
			}
			if recs[0].Conn == recs[len(recs)-1].Conn {
				t.Errorf("all records on conn %d: the server's close was not seen", recs[0].Conn)
			}
			for _, end := range col.Connections() {
				if end.Ended && end.Err != nil && !errors.Is(end.Err, net.ErrClosed) {
					t.Errorf("conn %d ended with %v: a frame broke the octet-counted format", end.ID, end.Err)
				}
			}
			if st := ls.Stats(); st.Frames != uint64(len(msgs)) || st.Bytes != uint64(total) || st.Reconnects != 1 {
				t.Errorf("Stats %+v: want %d frames of %d message bytes, 1 reconnect", st, len(msgs), total)
			}
		})
	}
}

// TestOctetCountedNotShared: the inheritance contract tells a child
// logsock's framing only, so a syslog-framed connection is not passed.
func TestOctetCountedNotShared(t *testing.T) {
	unixOnly(t, "no connection is shared (Start)")
	col := logsocktest.NewFakeCollector(t, "tcp", logsocktest.FakeSyslog)
	ls, err := logsock.NewSyslog("tcp", col.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	if err := ls.Start(exec.Command("true")); err == nil || !strings.Contains(err.Error(), "cannot be shared") {
		t.Errorf("Start: %v, want a refusal", err)
	}
}

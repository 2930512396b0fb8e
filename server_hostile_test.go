package logsock_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/logsocktest"
)

// hostileMaxFrame is the Servers' limit in the hostile tests: small, so
// that a thousand connections holding a whole frame stay cheap.
const hostileMaxFrame = 64 << 10

// TestHostileStreams: each malformed stream ends its own connection with
// its reason, delivers exactly the whole frames before the fault, allocates
// nothing for a declared length, and leaves a bystander connection alone.
func TestHostileStreams(t *testing.T) {
	pid := int32(os.Getpid()) // the peer's own pid: no FlagPidMismatch on Unix sockets
	hs := logsock.AppendHandshake(nil, logsock.LittleEndian, pid)
	zeros := bytes.Repeat(le(0), 1000)
	limitBody := strings.Repeat("x", hostileMaxFrame)
	type want struct {
		reason logsock.Reason
		err    error    // matched with errors.Is; nil: the error must be nil
		quote  string   // in the error's text: the offending bytes
		msgs   []string // delivered before the end
		flags  []logsock.Flags
	}
	for _, tc := range []struct {
		name   string
		stream []byte
		want
	}{
		{"nothing", nil, want{reason: logsock.ReasonEOF}},
		{"negative -1", cat(hs, frameOf("ok"), le(0xffffffff), "more"),
			want{logsock.ReasonBadLength, logsock.ErrNegativeLength, `"\xff\xff\xff\xff"`, []string{"ok"}, nil}},
		{"negative min int32", cat(hs, le(0x80000000)),
			want{logsock.ReasonBadLength, logsock.ErrNegativeLength, `"\x00\x00\x00\x80"`, nil, nil}},
		{"max int32", cat(hs, le(0x7fffffff), "a body"),
			want{logsock.ReasonFrameTooLarge, logsock.ErrFrameTooLarge, `"\xff\xff\xff\x7f"`, nil, nil}},
		{"limit + 1", cat(hs, frameOf("ok"), le(hostileMaxFrame+1), limitBody, "x"),
			want{logsock.ReasonFrameTooLarge, logsock.ErrFrameTooLarge, `"\x01\x00\x01\x00"`, []string{"ok"}, nil}},
		{"limit exactly", cat(hs, frameOf(limitBody)), want{reason: logsock.ReasonEOF, msgs: []string{limitBody}}},
		{"zero-length frames", cat(hs, zeros), want{reason: logsock.ReasonEOF, msgs: make([]string, 1000)}},
		{"header 1 byte", cat(hs, frameOf("ok"), "\x05"),
			want{logsock.ReasonTruncated, io.ErrUnexpectedEOF, `"\x05"`, []string{"ok"}, nil}},
		{"header 2 bytes", cat(hs, "\x05\x00"), want{logsock.ReasonTruncated, io.ErrUnexpectedEOF, `"\x05\x00"`, nil, nil}},
		{"header 3 bytes", cat(hs, "\x05\x00\x00"),
			want{logsock.ReasonTruncated, io.ErrUnexpectedEOF, `"\x05\x00\x00"`, nil, nil}},
		{"handshake 1 byte", hs[:1], want{logsock.ReasonTruncated, io.ErrUnexpectedEOF, "handshake", nil, nil}},
		{"handshake 2 bytes", hs[:2], want{logsock.ReasonTruncated, io.ErrUnexpectedEOF, "handshake", nil, nil}},
		{"handshake 3 bytes", hs[:3], want{logsock.ReasonTruncated, io.ErrUnexpectedEOF, "handshake", nil, nil}},
		{"truncated body", cat(hs, frameOf("ok"), le(10), "abc"),
			want{logsock.ReasonTruncated, io.ErrUnexpectedEOF, `"abc"`, []string{"ok"}, nil}},
		{"invalid UTF-8", cat(hs, frameOf("\xff\xfe not text"), frameOf("text"), frameOf("\xed\xa0\x80")),
			want{reason: logsock.ReasonEOF, msgs: []string{"\xff\xfe not text", "text", "\xed\xa0\x80"},
				flags: []logsock.Flags{logsock.FlagInvalidUTF8, 0, logsock.FlagInvalidUTF8}}},
	} {
		for _, network := range []string{"tcp", "unix"} {
			t.Run(tc.name+"/"+network, func(t *testing.T) {
				log, srv, addr, by := hostileServer(t, network, nil)
				// Room for the sink's copies of the records, so that they
				// are not counted as the connection's allocations.
				log.Reserve(len(tc.msgs) + 16)
				var before, after runtimeMem
				before.read()
				c := logsocktest.RawConn(t, network, addr)
				c.Write(tc.stream) // may fail once the Server has closed: what arrived counts
				c.Close()
				end := log.waitEnd(t, "the hostile connection's end", func(i logsock.ConnInfo) bool { return i.Conn != by.id })
				after.read()
				checkEnd(t, end, tc.reason, tc.err, tc.quote)
				recs := log.recordsOf(end.info.Conn)
				if got := msgs(recs); len(got) != len(tc.msgs) || strings.Join(got, "|") != strings.Join(tc.msgs, "|") {
					t.Errorf("delivered %d records %.40q, want %d %.40q", len(got), got, len(tc.msgs), tc.msgs)
				}
				if end.info.Frames != uint64(len(tc.msgs)) {
					t.Errorf("ConnInfo.Frames %d, want %d", end.info.Frames, len(tc.msgs))
				}
				var invalid uint64
				for i, r := range recs {
					want := logsock.Flags(0)
					if tc.flags != nil {
						want = tc.flags[i]
					}
					if r.Flags != want {
						t.Errorf("record %d flags %v, want %v", i, r.Flags, want)
					}
					if want&logsock.FlagInvalidUTF8 != 0 {
						invalid++
					}
				}
				if st := srv.Stats(); st.InvalidUTF8 != invalid || st.Ends[tc.reason] != 1 {
					t.Errorf("Stats %+v: want InvalidUTF8 %d and one end of %v", st, invalid, tc.reason)
				}
				// The read buffer grows with what arrives, doubling up to
				// the limit (steps that sum to under twice that), and can
				// take a pooled 64 KiB buffer on the way: never the
				// declared length.
				var delivered uint64
				for _, m := range tc.msgs {
					delivered += uint64(len(m))
				}
				if grew, bound := after.total-before.total, 3*hostileMaxFrame+delivered+96<<10; grew > bound {
					t.Errorf("the connection allocated %d bytes, want under %d", grew, bound)
				}
				by.check(t)
			})
		}
	}
}

// checkEnd checks a connection's end: its reason, its error, and the bytes
// the error quotes.
// errAny, as checkEnd's want, asks for an error, whichever: the Reason
// classifies it.
var errAny = errors.New("any error")

// TestHostileReset: a client that resets mid-frame. On TCP the read fails
// with ECONNRESET (ReasonIOError); a Unix socket has no reset, and its
// close ends the stream inside the frame (ReasonTruncated). Either way the
// partial frame is not delivered.
func TestHostileReset(t *testing.T) {
	for _, tc := range []struct {
		network string
		reason  logsock.Reason
		err     error
	}{
		{"tcp", logsock.ReasonIOError, logsocktest.ErrConnReset},
		{"unix", logsock.ReasonTruncated, io.ErrUnexpectedEOF},
	} {
		t.Run(tc.network, func(t *testing.T) {
			log, _, addr, by := hostileServer(t, tc.network, nil)
			c := logsocktest.RawConn(t, tc.network, addr, logsocktest.Frames(0, int32(os.Getpid()), "before the reset"))
			id := log.waitMsg(t, "before the reset").Conn
			if _, err := c.Write(cat(le(100), "partial")); err != nil {
				t.Fatal(err)
			}
			if tc, ok := c.(*net.TCPConn); ok {
				if err := tc.SetLinger(0); err != nil { // close sends RST
					t.Fatal(err)
				}
			}
			c.Close()
			end := log.waitConnEnd(t, id)
			checkEnd(t, end, tc.reason, tc.err, "")
			if got := msgs(log.recordsOf(id)); len(got) != 1 {
				t.Errorf("delivered %q, want only the frame before the reset", got)
			}
			by.check(t)
		})
	}
}

// TestHostileSlowHandshake: a client that connects and sends nothing, and
// one that sends part of a handshake and stalls, are closed at the
// handshake timeout; a bystander is not.
func TestHostileSlowHandshake(t *testing.T) {
	t.Parallel()
	log, srv, addr, by := hostileServer(t, localNetwork, func(s *logsock.Server) { s.HandshakeTimeout = 100 * time.Millisecond })
	start := time.Now()
	silent := logsocktest.RawConn(t, localNetwork, addr)
	logsocktest.RawConn(t, localNetwork, addr, []byte{1, 2, 3})
	log.Wait(t, "two handshake timeouts", func([]logsock.Record, []error) bool {
		return len(log.endsWith(logsock.ReasonHandshakeTimeout)) == 2
	})
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("closed after %v, before the timeout", d)
	}
	for _, end := range log.endsWith(logsock.ReasonHandshakeTimeout) {
		checkEnd(t, end, logsock.ReasonHandshakeTimeout, errAny, "")
		if end.info.Pid != 0 {
			t.Errorf("ConnInfo.Pid %d without a handshake", end.info.Pid)
		}
	}
	if n, err := silent.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("silent client read %d, %v; want 0, EOF", n, err)
	}
	if st := srv.Stats(); st.Ends[logsock.ReasonHandshakeTimeout] != 2 {
		t.Errorf("Stats %+v: want 2 handshake timeouts", st)
	}
	by.check(t)
}

// TestServerIdleTimeout: with IdleTimeout set, a connection quiet for that
// long is closed, between frames or inside one (whose part is dropped);
// one that keeps sending is not.
func TestServerIdleTimeout(t *testing.T) {
	t.Parallel()
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			t.Parallel()
			// A second: with 200 ms, the busy connection was closed too
			// under -race beside CPU hogs (issue 17), its sender or the
			// Server's reader kept from running that long.
			const idle = time.Second
			log := newConnLog()
			srv := log.Server()
			srv.IdleTimeout = idle
			addr := logsocktest.Serve(t, network, srv)
			pid := int32(os.Getpid())

			// The busy client sends well within the timeout, until told.
			busyAt := time.Now() // its first frame's write: the gaps count from it
			busy := logsocktest.RawConn(t, network, addr, logsocktest.Frames(0, pid, "busy 0"))
			busyID := log.waitMsg(t, "busy 0").Conn
			type sent struct {
				n   int
				gap time.Duration // the longest between two writes
			}
			stop, stopped := make(chan struct{}), make(chan sent)
			go func() {
				n, gap, last := 1, time.Duration(0), busyAt
				defer func() { stopped <- sent{n, gap} }()
				tick := time.NewTicker(idle / 10)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					if _, err := busy.Write(frameOf(fmt.Sprint("busy ", n))); err != nil {
						gap = max(gap, time.Since(last)) // the timeout came first: how long it waited
						return
					}
					n, gap, last = n+1, max(gap, time.Since(last)), time.Now()
				}
			}()

			start := time.Now()
			quiet := logsocktest.RawConn(t, network, addr, logsocktest.Frames(0, pid, "then quiet"))
			logsocktest.RawConn(t, network, addr, logsocktest.Frames(0, pid, "then half a frame"), le(10), []byte("abc"))
			quietID, halfID := log.waitMsg(t, "then quiet").Conn, log.waitMsg(t, "then half a frame").Conn
			for _, id := range []uint64{quietID, halfID} {
				end := log.waitConnEnd(t, id)
				checkEnd(t, end, logsock.ReasonIdleTimeout, errAny, "")
				if end.info.Frames != 1 {
					t.Errorf("connection %d delivered %d frames, want 1", end.info.Conn, end.info.Frames)
				}
			}
			if d := time.Since(start); d < idle {
				t.Errorf("closed after %v, before the timeout", d)
			}
			if n, err := quiet.Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Errorf("quiet client read %d, %v; want 0, EOF", n, err)
			}
			time.Sleep(idle + idle/2) // the busy client goes on past the timeout
			close(stop)
			busySent := <-stopped
			if ends := log.endsWith(logsock.ReasonIdleTimeout); len(ends) != 2 {
				// Its writes were meant to be a tenth of the timeout apart:
				// a machine that kept its writer from running for the whole
				// timeout proves nothing either way.
				if busySent.gap < idle {
					t.Fatalf("%d idle timeouts, want 2: the busy connection was closed (its writes up to %v apart)", len(ends), busySent.gap)
				}
				t.Logf("the busy client's writes were up to %v apart, over the timeout: its close is the timeout's", busySent.gap)
				return
			}
			log.waitMsg(t, fmt.Sprint("busy ", busySent.n-1))
			if got := len(log.recordsOf(busyID)); got != busySent.n {
				t.Errorf("busy connection delivered %d of %d frames", got, busySent.n)
			}
		})
	}
}

// TestServerStats: the counters add up over connections that end in
// different ways, and Reason and Flags print their names.
func TestServerStats(t *testing.T) {
	log := newConnLog()
	srv := log.Server()
	addr := logsocktest.Serve(t, "tcp", srv)
	pid := int32(os.Getpid())
	for i, stream := range [][]byte{
		logsocktest.Frames(0, pid, "one", "two"),                       // EOF
		cat(logsocktest.Frames(0, pid, "three"), le(0xffffffff)),       // bad length
		cat(logsocktest.Frames(0, pid, "\xff", ""), le(10), "partial"), // truncated, one invalid UTF-8
	} {
		c := logsocktest.RawConn(t, "tcp", addr, stream)
		c.Close()
		log.WaitEnds(t, i+1)
	}
	st := srv.Stats()
	want := logsock.ServerStats{Accepted: 3, Frames: 5, Bytes: 12, InvalidUTF8: 1,
		Ends: map[logsock.Reason]uint64{logsock.ReasonEOF: 1, logsock.ReasonBadLength: 1, logsock.ReasonTruncated: 1}}
	if fmt.Sprint(st) != fmt.Sprint(want) {
		t.Errorf("Stats\n %+v, want\n %+v", st, want)
	}
	for r, name := range map[logsock.Reason]string{logsock.ReasonEOF: "eof", logsock.ReasonBadLength: "bad_length",
		logsock.ReasonIOError: "io_error", 200: "Reason(200)"} {
		if r.String() != name {
			t.Errorf("Reason %d prints %q, want %q", r, r, name)
		}
	}
	for f, name := range map[logsock.Flags]string{0: "none", logsock.FlagInvalidUTF8: "invalid_utf8",
		logsock.FlagPidMismatch | logsock.FlagMixedWriters: "pid_mismatch|mixed_writers", 0x81: "invalid_utf8|0x80"} {
		if f.String() != name {
			t.Errorf("Flags %#x print %q, want %q", uint8(f), f, name)
		}
	}
}

// plainListener hands out connections without SyscallConn, as a wrapping
// listener might: the Server reads them through net.Conn alone.
type plainListener struct{ net.Listener }

type plainConn struct{ net.Conn }

func (l plainListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return plainConn{c}, nil
}

// TestServerPlainConn: a connection that is not a socket is served, timed
// out when idle, and drained at Shutdown.
func TestServerPlainConn(t *testing.T) {
	t.Parallel()
	pid := int32(os.Getpid())
	start := func(srv *logsock.Server) (string, chan error) {
		l := plainListener{logsocktest.Listen(t, "tcp")}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(l) }()
		return l.Addr().String(), served
	}

	log := newConnLog()
	srv := log.Server()
	srv.IdleTimeout = 100 * time.Millisecond
	addr, served := start(srv)
	logsocktest.RawConn(t, "tcp", addr, logsocktest.Frames(0, pid, "then quiet"))
	checkEnd(t, log.waitEnd(t, "the idle timeout", func(logsock.ConnInfo) bool { return true }),
		logsock.ReasonIdleTimeout, errAny, "")
	srv.Close()
	if err := <-served; !errors.Is(err, logsock.ErrServerClosed) {
		t.Errorf("Serve: %v", err)
	}

	log = newConnLog()
	srv = log.Server()
	addr, served = start(srv)
	logsocktest.RawConn(t, "tcp", addr, logsocktest.Frames(0, pid, "first"), frameOf("second"))
	id := log.waitMsg(t, "second").Conn
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	checkEnd(t, log.waitConnEnd(t, id), logsock.ReasonShutdown, logsock.ErrServerClosed, "")
	if err := <-served; !errors.Is(err, logsock.ErrServerClosed) {
		t.Errorf("Serve: %v", err)
	}
}

// TestServerCodePointsInvalid: in CodePoints mode, bytes that are not
// UTF-8 make the length uncountable: a bad length, quoted, after the
// frames before them.
func TestServerCodePointsInvalid(t *testing.T) {
	log, _, addr, by := hostileServer(t, "tcp", func(s *logsock.Server) { s.CodePoints = true })
	c := logsocktest.RawConn(t, "tcp", addr, cat(logsock.AppendHandshake(nil, 0, int32(os.Getpid())), le(2), "로그", le(3), "a\xffbc"))
	c.Close()
	end := log.waitEnd(t, "the end", func(i logsock.ConnInfo) bool { return i.Conn != by.id })
	checkEnd(t, end, logsock.ReasonBadLength, logsock.ErrInvalidCodePoint, `"\xffbc"`)
	if got := msgs(log.recordsOf(end.info.Conn)); len(got) != 1 || got[0] != "로그" {
		t.Errorf("delivered %q, want the frame before", got)
	}
	by.check(t)
}

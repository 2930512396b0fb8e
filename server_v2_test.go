package logsock_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/logsocktest"
)

// The Server's side of protocol v2 (issue 19), tested with a raw v2
// client: a net.Conn and the codec.

// v2Client is a raw v2 client, and what the collector has said to it.
type v2Client struct {
	t        testing.TB
	c        net.Conn
	status   uint8  // the collector's hello's
	maxFrame int32  // the collector's hello's
	acked    uint64 // the collector's hello's
	in       []byte // the collector's bytes, read and not yet parsed
}

// newSession returns a random session id.
func newSession(t testing.TB) logsock.SessionID {
	t.Helper()
	var id logsock.SessionID
	if _, err := rand.Read(id[:]); err != nil {
		t.Fatal(err)
	}
	return id
}

// dialV2 connects, says a hello whose frames start at next, and reads the
// collector's hello.
func dialV2(t testing.TB, network, addr string, session logsock.SessionID, next uint64, tag string) *v2Client {
	t.Helper()
	hello := logsock.AppendHello(nil, logsock.LittleEndian, int32(os.Getpid()), session, next, tag)
	v := &v2Client{t: t, c: logsocktest.RawConn(t, network, addr, hello)}
	v.readHello()
	return v
}

func (v *v2Client) readHello() {
	v.t.Helper()
	b := make([]byte, logsock.ServerHelloLen)
	v.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadFull(v.c, b); err != nil {
		v.t.Fatalf("reading the collector's hello: %v", err)
	}
	v.status, v.maxFrame, v.acked, _ = logsock.ParseServerHello(b, logsock.LittleEndian)
}

// frame2 is a v2 frame numbered seq, with the message "m<seq>", level 6
// and a time of seq seconds after 2020.
func frame2(seq uint64) []byte {
	return logsock.AppendFrame2(nil, logsock.LittleEndian, seq, frameTime(seq).UnixNano(), 6, fmt.Appendf(nil, "m%d", seq))
}

func frameTime(seq uint64) time.Time {
	return time.Date(2020, 1, 1, 0, 0, int(seq), 0, time.UTC)
}

// send writes the frames numbered from to to, in one write.
func (v *v2Client) send(from, to uint64) {
	v.t.Helper()
	var b []byte
	for seq := from; seq <= to; seq++ {
		b = append(b, frame2(seq)...)
	}
	if _, err := v.c.Write(b); err != nil {
		v.t.Fatalf("sending frames %d-%d: %v", from, to, err)
	}
}

// msg is one of the collector's messages.
type msg struct {
	kind byte
	n    uint64
}

// next returns the collector's next message, waiting until deadline.
func (v *v2Client) next(deadline time.Time) (msg, error) {
	for {
		kind, n, size, err := logsock.ParseCollectorMsg(v.in, logsock.LittleEndian)
		if err != nil {
			return msg{}, err
		}
		if size > 0 {
			v.in = v.in[size:]
			return msg{kind, n}, nil
		}
		var b [512]byte
		v.c.SetReadDeadline(deadline)
		k, err := v.c.Read(b[:])
		v.in = append(v.in, b[:k]...)
		if k == 0 && err != nil {
			return msg{}, err
		}
	}
}

// waitAck reads messages until an acknowledgement of n or beyond, and
// returns them.
func (v *v2Client) waitAck(n uint64) []msg {
	v.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var got []msg
	for {
		m, err := v.next(deadline)
		if err != nil {
			v.t.Fatalf("waiting for the acknowledgement of %d, having read %v: %v", n, got, err)
		}
		got = append(got, m)
		if m.kind == 'A' && m.n >= n {
			return got
		}
	}
}

// arrived returns the messages that have arrived, without waiting.
func (v *v2Client) arrived() []msg {
	v.t.Helper()
	var got []msg
	for {
		m, err := v.next(time.Now().Add(10 * time.Millisecond)) // a deadline passed fails at once
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return got
		}
		if err != nil {
			v.t.Fatalf("reading what arrived, having read %v: %v", got, err)
		}
		got = append(got, m)
	}
}

// TestServerV2Hello: the collector answers a hello with its status, its
// MaxFrame, and the session's last acknowledged frame: 0 for a new one,
// Resume's for a collector that learned it.
func TestServerV2Hello(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			srv := newConnLog().Server()
			srv.MaxFrame = 1000
			fresh, resumed := newSession(t), newSession(t)
			srv.Resume(resumed, 41)
			addr := logsocktest.Serve(t, network, srv)
			a := dialV2(t, network, addr, fresh, 1, "svc")
			if a.status != 0 || a.maxFrame != 1000 || a.acked != 0 {
				t.Errorf("new session: status %d max frame %d acked %d, want 0 1000 0", a.status, a.maxFrame, a.acked)
			}
			b := dialV2(t, network, addr, resumed, 30, "svc")
			if b.status != 0 || b.acked != 41 {
				t.Errorf("resumed session: status %d acked %d, want 0 41", b.status, b.acked)
			}
			if st := srv.Stats(); st.Sessions != 2 {
				t.Errorf("Stats.Sessions %d, want 2", st.Sessions)
			}
		})
	}
}

// TestServerV2BadHello: a hello the collector refuses is answered with
// its status, then closed, ReasonBadHello; one cut short is truncated;
// a bystander is unharmed.
func TestServerV2BadHello(t *testing.T) {
	good := func() []byte {
		return logsock.AppendHello(nil, logsock.LittleEndian, 1, logsock.SessionID{1}, 1, "svc")
	}
	with := func(i int, b byte) []byte { h := good(); h[i] = b; return h }
	for _, tc := range []struct {
		name   string
		hello  []byte
		status uint8 // 0: no answer
		reason logsock.Reason
	}{
		{"version 3", with(4, 3), 1, logsock.ReasonBadHello},
		{"a flag", with(5, 1), 1, logsock.ReasonBadHello},
		{"reserved byte", with(7, 1), 2, logsock.ReasonBadHello},
		{"empty tag", logsock.AppendHello(nil, logsock.LittleEndian, 1, logsock.SessionID{1}, 1, ""), 2, logsock.ReasonBadHello},
		{"tag with a space", logsock.AppendHello(nil, logsock.LittleEndian, 1, logsock.SessionID{1}, 1, "a b"), 2, logsock.ReasonBadHello},
		{"zero session", logsock.AppendHello(nil, logsock.LittleEndian, 1, logsock.SessionID{}, 1, "svc"), 2, logsock.ReasonBadHello},
		{"first frame 0", logsock.AppendHello(nil, logsock.LittleEndian, 1, logsock.SessionID{1}, 0, "svc"), 2, logsock.ReasonBadHello},
		{"cut short", good()[:20], 0, logsock.ReasonTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log, _, addr, by := hostileServer(t, "tcp", nil)
			c := logsocktest.RawConn(t, "tcp", addr, tc.hello)
			if tc.status == 0 {
				c.(*net.TCPConn).CloseWrite()
			}
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			answer, err := io.ReadAll(c)
			if tc.status != 0 {
				if len(answer) != logsock.ServerHelloLen {
					t.Fatalf("answer %q (%v), want a collector's hello and the end", answer, err)
				}
				if status, _, _, perr := logsock.ParseServerHello(answer, logsock.LittleEndian); status != tc.status || perr == nil {
					t.Errorf("status %d (%v), want %d", status, perr, tc.status)
				}
			} else if len(answer) != 0 {
				t.Errorf("answer %q to a hello cut short", answer)
			}
			end := log.waitEnd(t, "the hello's connection", func(i logsock.ConnInfo) bool { return i.Conn != by.id })
			if end.info.Reason != tc.reason || end.err == nil {
				t.Errorf("ended %v (%v), want %v and an error", end.info.Reason, end.err, tc.reason)
			}
			by.check(t)
		})
	}
}

// TestServerV2Records: v2 records carry their session, tag, number,
// level and the client's time; a v1 client on the same Server still gets
// v1's records.
func TestServerV2Records(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			log := newConnLog()
			addr := logsocktest.Serve(t, network, log.Server())
			session := newSession(t)
			start := time.Now()
			v := dialV2(t, network, addr, session, 7, "svc")
			var b []byte
			for i, level := range []uint8{3, 7, 0} {
				seq := uint64(7 + i)
				b = logsock.AppendFrame2(b, logsock.LittleEndian, seq, frameTime(seq).UnixNano(), level, fmt.Appendf(nil, "m%d", seq))
			}
			if _, err := v.c.Write(b); err != nil {
				t.Fatal(err)
			}
			logsocktest.RawConn(t, network, addr, logsocktest.Frames(logsock.LittleEndian, 123, "v1"))
			v1 := log.waitMsg(t, "v1")
			recs := log.WaitRecords(t, 4)
			var v2 []logsock.Record
			for _, r := range recs {
				if r.Conn != v1.Conn {
					v2 = append(v2, r)
				}
			}
			for i, level := range []logsock.Level{logsock.LevelError, logsock.LevelDebug, logsock.LevelEmergency} {
				r, seq := v2[i], uint64(7+i)
				if string(r.Msg) != fmt.Sprintf("m%d", seq) || r.Seq != seq || r.Level != level || !r.Logged.Equal(frameTime(seq)) ||
					r.Session != session || r.Tag != "svc" || r.Pid != int32(os.Getpid()) || r.Time.Before(start) || r.Time.After(time.Now()) {
					t.Errorf("v2 record %d: %+v, want m%d, seq %d, level %v, logged %v", i, r, seq, seq, level, frameTime(seq))
				}
			}
			if v1.Pid != 123 || v1.Seq != 0 || v1.Level != logsock.LevelInfo || !v1.Logged.IsZero() || v1.Session != (logsock.SessionID{}) || v1.Tag != "" {
				t.Errorf("v1 record: %+v", v1)
			}
			if acks := v.waitAck(9); acks[len(acks)-1] != (msg{'A', 9}) {
				t.Errorf("acknowledgements %v, want the last A 9", acks)
			}
		})
	}
}

// TestServerV2AcksPerRead: acknowledgements are cumulative, never go
// backwards, and come one for many frames: one a read, not one a frame.
func TestServerV2AcksPerRead(t *testing.T) {
	const frames, batch = 20000, 500
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			srv := &logsock.Server{Handler: func(*logsock.Record) {}}
			addr := logsocktest.Serve(t, network, srv)
			v := dialV2(t, network, addr, newSession(t), 1, "svc")
			go func() {
				for seq := uint64(1); seq <= frames; seq += batch {
					var b []byte
					for s := seq; s < seq+batch; s++ {
						b = append(b, frame2(s)...)
					}
					if _, err := v.c.Write(b); err != nil {
						return
					}
				}
			}()
			acks := v.waitAck(frames)
			for i, m := range acks {
				if m.kind != 'A' || (i > 0 && m.n <= acks[i-1].n) {
					t.Fatalf("message %d of %d is %c %d, after %v", i, len(acks), m.kind, m.n, acks[max(i-1, 0)])
				}
			}
			// A write of 500 frames (20 KB) takes a read or two.
			if len(acks) > frames/10 {
				t.Errorf("%d acknowledgements for %d frames in writes of %d: want one a read", len(acks), frames, batch)
			}
			t.Logf("%d acknowledgements for %d frames", len(acks), frames)
		})
	}
}

// deferrer is a Handler that defers the records whose message starts
// with "defer", and tells of each record handled.
type deferrer struct {
	acks    chan logsock.Ack
	handled chan string
}

func newDeferrer() *deferrer {
	return &deferrer{acks: make(chan logsock.Ack, 1000), handled: make(chan string, 1000)}
}

func (d *deferrer) handle(r *logsock.Record) {
	if bytes.HasPrefix(r.Msg, []byte("defer")) {
		d.acks <- r.Defer()
	}
	d.handled <- string(r.Msg)
}

func (d *deferrer) waitHandled(t *testing.T, msg string) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case m := <-d.handled:
			if m == msg {
				return
			}
		case <-timeout:
			t.Fatalf("timed out waiting for the Handler to take %q", msg)
		}
	}
}

// TestServerV2Defer: a record the Handler defers is acknowledged only
// at Done; those before it are acknowledged meanwhile.
func TestServerV2Defer(t *testing.T) {
	d := newDeferrer()
	addr := logsocktest.Serve(t, "unix", &logsock.Server{Handler: d.handle})
	v := dialV2(t, "unix", addr, newSession(t), 1, "svc")
	b := logsock.AppendFrame2(nil, logsock.LittleEndian, 1, 0, 6, []byte("first"))
	b = logsock.AppendFrame2(b, logsock.LittleEndian, 2, 0, 6, []byte("defer me"))
	b = logsock.AppendFrame2(b, logsock.LittleEndian, 3, 0, 6, []byte("third"))
	if _, err := v.c.Write(b); err != nil {
		t.Fatal(err)
	}
	d.waitHandled(t, "third")
	if _, err := v.c.Write(logsock.AppendFrame2(nil, logsock.LittleEndian, 4, 0, 6, []byte("fourth"))); err != nil {
		t.Fatal(err)
	}
	d.waitHandled(t, "fourth")
	// Frame 1 is acknowledged (within the 2 ms that acknowledgements
	// gather: waited for, since a busy machine ran the timer later once,
	// stress run), and nothing beyond it while frame 2 is deferred.
	if got := v.waitAck(1); got[len(got)-1] != (msg{'A', 1}) {
		t.Fatalf("before Done: %v, want acknowledgements up to frame 1, the one before the deferred", got)
	}
	if got := v.arrived(); len(got) > 0 && got[len(got)-1].n > 1 {
		t.Fatalf("before Done: %v, want nothing beyond frame 1, the one before the deferred", got)
	}
	(<-d.acks).Done()
	if got := v.waitAck(4); got[len(got)-1] != (msg{'A', 4}) {
		t.Errorf("after Done: %v, want up to A 4", got)
	}
}

// TestServerV2Duplicates: frames sent again on a new connection of the
// session, or at or below Resume's number, are dropped before the
// Handler, counted, and acknowledged.
func TestServerV2Duplicates(t *testing.T) {
	log := newConnLog()
	srv := log.Server()
	resumed := newSession(t)
	srv.Resume(resumed, 100)
	addr := logsocktest.Serve(t, "tcp", srv)

	session := newSession(t)
	a := dialV2(t, "tcp", addr, session, 1, "svc")
	a.send(1, 10)
	a.waitAck(10)
	a.c.Close()
	// The client lost the acknowledgement of 6-10: it sends them again.
	b := dialV2(t, "tcp", addr, session, 6, "svc")
	if b.acked != 10 {
		t.Errorf("hello after a reconnect: acked %d, want 10", b.acked)
	}
	b.send(6, 12)
	if got := b.waitAck(12); got[len(got)-1].n != 12 {
		t.Errorf("acknowledgements %v, want up to 12", got)
	}
	c := dialV2(t, "tcp", addr, resumed, 99, "svc")
	c.send(99, 102)
	c.waitAck(102)
	// Resume while the session is open: its client has not sent 200, so
	// the number is for its next connection.
	srv.Resume(resumed, 200)
	c.send(103, 103)
	if got := c.waitAck(103); got[len(got)-1].n != 103 {
		t.Errorf("after Resume(200) on an open connection: %v, want A 103", got)
	}
	c.c.Close()
	if c = dialV2(t, "tcp", addr, resumed, 104, "svc"); c.acked != 200 {
		t.Errorf("hello after Resume(200): acked %d", c.acked)
	}

	var seqs []uint64
	for _, r := range log.WaitRecords(t, 15) {
		seqs = append(seqs, r.Seq)
	}
	if want := []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 101, 102, 103}; fmt.Sprint(seqs) != fmt.Sprint(want) {
		t.Errorf("records %v, want %v", seqs, want)
	}
	if st := srv.Stats(); st.Duplicates != 7 || st.Frames != 15 {
		t.Errorf("Stats.Duplicates %d Frames %d, want 7 and 15", st.Duplicates, st.Frames)
	}
}

// TestServerV2Fencing: a new connection of a session closes the older
// one; the frames that the older one had taken and whose Done comes
// later are acknowledged on the new one, and those it sends again are
// dropped meanwhile.
func TestServerV2Fencing(t *testing.T) {
	d := newDeferrer()
	log := newConnLog()
	srv := log.Server()
	srv.Handler = func(r *logsock.Record) { log.Handle(r); d.handle(r) }
	addr := logsocktest.Serve(t, "tcp", srv)
	session := newSession(t)
	defer5 := func(v *v2Client, from, to uint64) {
		var b []byte
		for seq := from; seq <= to; seq++ {
			b = logsock.AppendFrame2(b, logsock.LittleEndian, seq, 0, 6, fmt.Appendf(nil, "defer %d", seq))
		}
		if _, err := v.c.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	a := dialV2(t, "tcp", addr, session, 1, "svc")
	defer5(a, 1, 5)
	d.waitHandled(t, "defer 5")
	firstConn := log.waitMsg(t, "defer 1").Conn

	b := dialV2(t, "tcp", addr, session, 1, "svc")
	end := log.waitConnEnd(t, firstConn)
	if end.info.Reason != logsock.ReasonEOF || end.err == nil {
		t.Errorf("the older connection ended %v (%v), want eof with an error", end.info.Reason, end.err)
	}
	a.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadAll(a.c); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the older connection is still open")
	}
	if b.acked != 0 {
		t.Errorf("hello with 5 frames deferred: acked %d, want 0", b.acked)
	}
	defer5(b, 1, 6)
	d.waitHandled(t, "defer 6")
	if st := srv.Stats(); st.Duplicates != 5 {
		t.Errorf("Stats.Duplicates %d, want 5", st.Duplicates)
	}
	for range 6 {
		(<-d.acks).Done()
	}
	if got := b.waitAck(6); got[len(got)-1] != (msg{'A', 6}) {
		t.Errorf("after Done: %v, want up to A 6", got)
	}
}

// TestServerV2Shutdown: Shutdown says G to a v2 client, reads on, and
// acknowledges every frame it read, deferred ones too, before it closes.
func TestServerV2Shutdown(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			var handled atomic.Uint64
			dones := make(chan logsock.Ack, 100000)
			srv := &logsock.Server{Handler: func(r *logsock.Record) {
				handled.Add(1)
				dones <- r.Defer() // as logsockd: acknowledged once written
			}}
			var writer sync.WaitGroup
			writer.Go(func() {
				for a := range dones {
					a.Done()
				}
			})
			defer func() { close(dones); writer.Wait() }()
			l := logsocktest.Listen(t, network)
			stop := logsocktest.ServeOn(t, srv, l)
			logsocktest.WaitServing(t, l)
			v := dialV2(t, network, l.Addr().String(), newSession(t), 1, "svc")
			v.send(1, 1000)
			waitUntil(t, "frames handled", func() bool { return handled.Load() > 0 })
			stopped := make(chan struct{})
			go func() { stop(); close(stopped) }()
			// A client stops writing at G; one that had not read it yet
			// is read on.
			var last uint64
			for m := (msg{}); m.kind != 'G'; {
				var err error
				if m, err = v.next(time.Now().Add(20 * time.Second)); err != nil {
					t.Fatalf("before G: %v", err)
				}
				if m.kind == 'A' {
					last = m.n
				}
			}
			v.send(1001, 2000)
			v.c.(interface{ CloseWrite() error }).CloseWrite()
			for {
				m, err := v.next(time.Now().Add(20 * time.Second))
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("after G: %v", err)
				}
				if m.kind != 'A' || m.n <= last {
					t.Fatalf("after G, after A %d: %c %d", last, m.kind, m.n)
				}
				last = m.n
			}
			if last != 2000 || handled.Load() != 2000 {
				t.Errorf("acknowledged up to %d, %d handled, want 2000 and 2000", last, handled.Load())
			}
			<-stopped
		})
	}
}

// TestServerV2BadFrame: a v2 frame's level above 7 is a protocol error,
// ReasonBadFrame, that quotes the header; a bystander is unharmed.
func TestServerV2BadFrame(t *testing.T) {
	log, _, addr, by := hostileServer(t, "tcp", nil)
	v := dialV2(t, "tcp", addr, newSession(t), 1, "svc")
	v.send(1, 1)
	if _, err := v.c.Write(logsock.AppendFrame2(nil, logsock.LittleEndian, 2, 0, 8, []byte("x"))); err != nil {
		t.Fatal(err)
	}
	end := log.waitEnd(t, "the bad frame's connection", func(i logsock.ConnInfo) bool { return i.Conn != by.id })
	var pe *logsock.ProtocolError
	if end.info.Reason != logsock.ReasonBadFrame || !errors.As(end.err, &pe) || end.info.Frames != 1 {
		t.Errorf("ended %v (%v) after %d frames, want %v, a *ProtocolError, after 1", end.info.Reason, end.err, end.info.Frames, logsock.ReasonBadFrame)
	} else if pe.Part != "v2 frame header" || pe.Offset != 36+3+19 || len(pe.Data) != 17 {
		t.Errorf("%#v", pe)
	}
	by.check(t)
}

// FuzzServerV2: whatever follows a valid hello, the Server does not
// panic, ends the connection alone, and a bystander goes on.
func FuzzServerV2(f *testing.F) {
	for _, seed := range [][]byte{
		nil,
		cat(frame2(1), frame2(2)),
		cat(frame2(2), frame2(1)), // backwards: a wrap of 2^32
		logsock.AppendFrame2(nil, logsock.LittleEndian, 1, 0, 8, []byte("level")), // bad level
		cat(le(fuzzLimit+1), bytes.Repeat([]byte{0}, 13+fuzzLimit+1)),             // too large
		cat(le(0xffffffff), bytes.Repeat([]byte{0}, 13)),                          // negative
		frame2(1)[:10], // a header cut short
		frame2(1)[:19], // a body cut short
		logsock.AppendHello(nil, logsock.LittleEndian, 1, logsock.SessionID{1}, 1, "again"),
	} {
		f.Add(seed, uint8(0))
	}
	log := newConnLog()
	srv := log.Server()
	srv.MaxFrame = fuzzLimit
	srv.Handler = func(r *logsock.Record) {
		if r.Session == (logsock.SessionID{}) {
			log.Handle(r) // the bystanders' only: the fuzzed records would pile up
		}
	}
	addr := logsocktest.Serve(f, "unix", srv)
	session := newSession(f)
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8) {
		by := newBystander(t, log, "unix", addr)
		// Each input in a session of its own, but one in 8 in a shared
		// one, so that fencing and duplicates are exercised too.
		id := newSession(t)
		if chunk%8 == 0 {
			id = session
		}
		c := logsocktest.RawConn(t, "unix", addr)
		copied := make(chan struct{})
		go func() { io.Copy(io.Discard, c); close(copied) }() // the collector's messages
		for rest := cat(logsock.AppendHello(nil, logsock.LittleEndian, int32(os.Getpid()), id, 1, "fuzz"), stream); len(rest) > 0; {
			n := len(rest)
			if chunk > 0 {
				n = min(n, int(chunk))
			}
			if _, err := c.Write(rest[:n]); err != nil {
				break // the Server has closed
			}
			rest = rest[n:]
		}
		c.(*net.UnixConn).CloseWrite()
		select { // the Server ends the connection: it reads to the end, or stops at an error
		case <-copied:
		case <-time.After(20 * time.Second):
			t.Fatal("the connection did not end")
		}
		by.check(t)
	})
}

// TestServerV2LargeFrames: v2 frames longer than a read buffer are read
// within the memory budget, as v1's are, whole and numbered.
func TestServerV2LargeFrames(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			log := newConnLog()
			srv := log.Server()
			srv.MaxMemory = 1 << 20
			addr := logsocktest.Serve(t, network, srv)
			v := dialV2(t, network, addr, newSession(t), 1, "big")
			sizes := []int{100 << 10, 10, 300 << 10, 70 << 10}
			var b []byte
			for i, n := range sizes {
				b = logsock.AppendFrame2(b, logsock.LittleEndian, uint64(i+1), 0, 6, bytes.Repeat([]byte{'a' + byte(i)}, n))
			}
			go v.c.Write(b) // the acknowledgements are read meanwhile
			v.waitAck(uint64(len(sizes)))
			recs := log.WaitRecords(t, len(sizes))
			for i, n := range sizes {
				if r := recs[i]; r.Seq != uint64(i+1) || !bytes.Equal(r.Msg, bytes.Repeat([]byte{'a' + byte(i)}, n)) {
					t.Errorf("record %d: seq %d, %d bytes, want %d and %d bytes of %c", i, r.Seq, len(r.Msg), i+1, n, 'a'+byte(i))
				}
			}
		})
	}
}

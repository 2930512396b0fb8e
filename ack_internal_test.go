package logsock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// v2Collector is a collector of protocol v2 written from PROTOCOL.md with
// the codec alone, to test the client against: it answers hellos, reads
// frames, remembers each session's last number, and acknowledges each
// read's frames, unless told otherwise.
type v2Collector struct {
	t        *testing.T
	l        net.Listener
	maxFrame int

	mu         sync.Mutex
	got        []v2Frame            // every frame read, duplicates included
	last       map[SessionID]uint64 // each session's last frame acknowledged
	conns      []net.Conn
	hellos     []hello
	changed    chan struct{}
	noAcks     bool // read, acknowledge nothing
	badAckOnce bool // acknowledge, once, a frame never sent
	dropNext   int  // close the next connection after reading this many frames, without acknowledging them
}

type v2Frame struct {
	session SessionID
	seq     uint64
	at      int64
	level   Level
	msg     string
}

func newV2Collector(t *testing.T, network string) *v2Collector {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		dir, err := os.MkdirTemp("", "v2")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		addr = dir + "/s"
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	c := &v2Collector{t: t, l: l, maxFrame: DefaultMaxFrame, last: map[SessionID]uint64{}, changed: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			c.mu.Lock()
			c.conns = append(c.conns, nc)
			c.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.serve(nc)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		c.closeConns()
		wg.Wait()
	})
	return c
}

func (c *v2Collector) addr() string { return c.l.Addr().String() }

func (c *v2Collector) closeConns() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, nc := range c.conns {
		nc.Close()
	}
}

// note wakes the waiters; the caller holds mu.
func (c *v2Collector) note() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *v2Collector) serve(nc net.Conn) {
	defer nc.Close()
	o := LittleEndian
	fixed := make([]byte, helloLen)
	if _, err := io.ReadFull(nc, fixed); err != nil {
		return
	}
	b := append(fixed, make([]byte, helloSize(fixed)-helloLen)...)
	if _, err := io.ReadFull(nc, b[helloLen:]); err != nil {
		return
	}
	h, status, err := o.parseHello(b)
	c.mu.Lock()
	c.hellos = append(c.hellos, h)
	acked := c.last[h.session]
	drop := c.dropNext
	c.dropNext = 0
	c.note()
	c.mu.Unlock()
	nc.Write(o.appendServerHello(nil, serverHello{status: status, maxFrame: int32(c.maxFrame), acked: acked}))
	if err != nil {
		return
	}
	prev := h.next - 1
	buf := make([]byte, 0, 1<<16)
	rd := make([]byte, 1<<16)
	read := 0
	for {
		n, err := nc.Read(rd)
		if err != nil {
			return
		}
		buf = append(buf, rd[:n]...)
		var frames []v2Frame
		for len(buf) >= header2Len {
			size, perr := parseFrameHeader(buf, o, c.maxFrame)
			if perr != nil {
				c.t.Errorf("v2 collector: %v", perr)
				return
			}
			if len(buf) < header2Len+size {
				break
			}
			low, at, level := o.getHeader2(buf)
			prev = expandSeq(prev, low)
			frames = append(frames, v2Frame{h.session, prev, at, Level(level), string(buf[header2Len : header2Len+size])})
			buf = buf[header2Len+size:]
		}
		if len(frames) == 0 {
			continue
		}
		read += len(frames)
		c.mu.Lock()
		if drop > 0 && read >= drop {
			c.got = append(c.got, frames...) // read, never acknowledged: lost with the crash
			c.note()
			c.mu.Unlock()
			return
		}
		c.got = append(c.got, frames...)
		ack := !c.noAcks
		if ack {
			c.last[h.session] = prev
		}
		c.note()
		c.mu.Unlock()
		if ack {
			c.mu.Lock()
			bad := c.badAckOnce
			c.badAckOnce = false
			c.mu.Unlock()
			if bad {
				nc.Write(o.appendAck(nil, prev+1000))
				continue
			}
			nc.Write(o.appendAck(nil, prev))
		}
	}
}

// waitFor waits until cond, called under mu, holds.
func (c *v2Collector) waitFor(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		c.mu.Lock()
		ok, changed := cond(), c.changed
		c.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			c.t.Fatalf("v2 collector: no %s in 30 s", what)
		}
	}
}

// distinct returns the messages received, each once, in the order of
// their numbers, and how many arrived more than once.
func (c *v2Collector) distinct() (msgs []string, dups int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[uint64]bool{}
	var max uint64
	byseq := map[uint64]string{}
	for _, f := range c.got {
		if seen[f.seq] {
			dups++
			if byseq[f.seq] != f.msg {
				c.t.Errorf("frame %d arrived as %q and as %q", f.seq, byseq[f.seq], f.msg)
			}
			continue
		}
		seen[f.seq], byseq[f.seq] = true, f.msg
		if f.seq > max {
			max = f.seq
		}
	}
	for s := uint64(1); s <= max; s++ {
		if m, ok := byseq[s]; ok {
			msgs = append(msgs, m)
		}
	}
	return msgs, dups
}

func eachMode(t *testing.T, f func(t *testing.T, network string, batching bool)) {
	for _, network := range []string{"tcp", "unix"} {
		for _, batching := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/batching=%v", network, batching), func(t *testing.T) { f(t, network, batching) })
		}
	}
}

func TestAcksDelivered(t *testing.T) {
	eachMode(t, func(t *testing.T, network string, batching bool) {
		col := newV2Collector(t, network)
		ls, err := New(network, col.addr(), &Config{Acks: true, Tag: "svc", Batching: batching})
		if err != nil {
			t.Fatal(err)
		}
		defer ls.Close()
		before := time.Now().UnixNano()
		const n = 2000
		for i := range n {
			level := LevelInfo
			if i%10 == 0 {
				level = LevelError
			}
			if err := ls.LogLevel(level, fmt.Sprintf("m%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := ls.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		st := ls.Stats()
		if st.Acked != n || st.Held != 0 {
			t.Fatalf("after Flush: Acked %d, Held %d; want %d, 0", st.Acked, st.Held, n)
		}
		col.mu.Lock()
		got := append([]v2Frame(nil), col.got...)
		hellos := append([]hello(nil), col.hellos...)
		col.mu.Unlock()
		if len(got) != n {
			t.Fatalf("collector read %d frames; want %d", len(got), n)
		}
		for i, f := range got {
			want := LevelInfo
			if i%10 == 0 {
				want = LevelError
			}
			if f.seq != uint64(i+1) || f.msg != fmt.Sprintf("m%d", i) || f.level != want || f.at < before || f.at > time.Now().UnixNano() {
				t.Fatalf("frame %d: %+v; want seq %d, m%d, level %v, a time of this test", i, f, i+1, i, want)
			}
		}
		if len(hellos) != 1 || hellos[0].tag != "svc" || hellos[0].pid != int32(os.Getpid()) || hellos[0].next != 1 {
			t.Fatalf("hellos %+v; want one, tag svc, this pid, next 1", hellos)
		}
	})
}

// TestAcksCollectorCrash: a collector that reads frames and dies before it
// acknowledges them loses nothing: the client sends them again, with
// their numbers, on its next connection.
func TestAcksCollectorCrash(t *testing.T) {
	eachMode(t, func(t *testing.T, network string, batching bool) {
		col := newV2Collector(t, network)
		col.dropNext = 300
		ls, err := New(network, col.addr(), &Config{Acks: true, Batching: batching, MinBackoff: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer ls.Close()
		const n = 1000
		for i := range n {
			if err := ls.Log(fmt.Sprintf("m%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := ls.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		msgs, dups := col.distinct()
		if len(msgs) != n {
			t.Fatalf("%d distinct frames; want %d", len(msgs), n)
		}
		for i, m := range msgs {
			if m != fmt.Sprintf("m%d", i) {
				t.Fatalf("frame %d is %q", i+1, m)
			}
		}
		st := ls.Stats()
		if dups == 0 || st.Resent == 0 || st.Acked != n || st.Reconnects != 1 {
			t.Fatalf("%d duplicates, Stats %+v; want some resent after the crash, %d acknowledged, 1 reconnect", dups, st, n)
		}
	})
}

// TestAcksFlushWaits: Flush returns only once the frames are acknowledged,
// and reports them undelivered if they are not by its deadline; Close
// drops and counts them.
func TestAcksFlushWaits(t *testing.T) {
	t.Parallel()
	eachMode(t, func(t *testing.T, network string, batching bool) {
		col := newV2Collector(t, network)
		col.noAcks = true
		ls, err := New(network, col.addr(), &Config{Acks: true, Batching: batching, CloseTimeout: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 10 {
			ls.Log(fmt.Sprint(i))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		err = ls.Flush(ctx)
		if !errors.Is(err, ErrUndelivered) || !strings.Contains(err.Error(), "10 frames") {
			t.Fatalf("Flush: %v; want ErrUndelivered for 10 frames", err)
		}
		col.waitFor("10 frames read", func() bool { return len(col.got) == 10 })
		if st := ls.Stats(); st.Held != 10 || st.Acked != 0 {
			t.Fatalf("Stats %+v; want 10 held, 0 acknowledged", st)
		}
		if err := ls.Close(); !errors.Is(err, ErrUndelivered) {
			t.Fatalf("Close: %v; want ErrUndelivered", err)
		}
		if st := ls.Stats(); st.Dropped != 10 {
			t.Fatalf("Dropped %d after Close; want 10", st.Dropped)
		}
	})
}

// TestAcksV1Collector: a collector that takes the hello for a pid and
// never answers fails the attempt within DialTimeout, with an error that
// says so; the frames stay held.
func TestAcksV1Collector(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			go io.Copy(io.Discard, nc)
		}
	}()
	ls, err := New("tcp", l.Addr().String(), &Config{Acks: true, DialTimeout: 200 * time.Millisecond, CloseTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	ls.Log("held")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err = ls.Flush(ctx)
	var op *OpError
	if !errors.As(err, &op) || op.Op != "handshake" || !strings.Contains(err.Error(), "v1") {
		t.Fatalf("Flush: %v; want a handshake *OpError that names a v1 collector", err)
	}
	if st := ls.Stats(); st.Held != 1 {
		t.Fatalf("Held %d; want 1", st.Held)
	}
}

// TestSlogHandlerV2: each record is one frame that carries its time and
// level, formatted by slog's handler with the attributes and groups of
// WithAttrs and WithGroup, from many goroutines at once.
func TestSlogHandlerV2(t *testing.T) {
	col := newV2Collector(t, "unix")
	ls, err := New("unix", col.addr(), &Config{Acks: true, Batching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	h := NewSlogHandler(ls, &SlogOptions{JSON: true, HandlerOptions: slog.HandlerOptions{Level: slog.LevelDebug}})
	h = h.WithAttrs([]slog.Attr{slog.String("svc", "api")}).WithGroup("req")
	at := time.Date(2026, 12, 7, 10, 0, 0, 123, time.UTC)
	var wg sync.WaitGroup
	const goroutines, each = 4, 100
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				r := slog.NewRecord(at.Add(time.Duration(g*each+i)), slog.LevelWarn, "boom", 0)
				r.AddAttrs(slog.Int("n", g*each+i))
				if err := h.Handle(context.Background(), r); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := ls.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	col.mu.Lock()
	got := append([]v2Frame(nil), col.got...)
	col.mu.Unlock()
	if len(got) != goroutines*each {
		t.Fatalf("%d frames; want %d", len(got), goroutines*each)
	}
	for _, f := range got {
		var rec struct {
			Level, Msg, Svc string
			Req             struct{ N int }
		}
		if err := json.Unmarshal([]byte(f.msg), &rec); err != nil {
			t.Fatalf("%q: %v", f.msg, err)
		}
		if f.level != LevelWarning || rec.Level != "WARN" || rec.Msg != "boom" || rec.Svc != "api" {
			t.Fatalf("frame %+v; want level warning, a WARN record boom with svc api", f)
		}
		if want := at.Add(time.Duration(rec.Req.N)).UnixNano(); f.at != want {
			t.Fatalf("record %d carries time %d; want its own, %d", rec.Req.N, f.at, want)
		}
	}
	if h.Enabled(context.Background(), slog.LevelDebug-1) {
		t.Error("enabled below the handler's level")
	}
}

func TestLevelOf(t *testing.T) {
	for _, c := range []struct {
		in   slog.Level
		want Level
	}{{slog.LevelDebug, LevelDebug}, {slog.LevelInfo, LevelInfo}, {slog.LevelInfo + 2, LevelNotice},
		{slog.LevelWarn, LevelWarning}, {slog.LevelError, LevelError}, {slog.LevelError + 4, LevelCritical},
		{slog.LevelError + 8, LevelAlert}, {slog.LevelError + 12, LevelEmergency}, {slog.LevelError + 100, LevelEmergency}} {
		if got := levelOf(c.in); got != c.want {
			t.Errorf("levelOf(%v) = %v; want %v", c.in, got, c.want)
		}
	}
}

// TestAcksBadAck: an acknowledgement of a frame never sent drops the
// connection with an error that says so; nothing is lost, the frames go
// again on the next connection.
func TestAcksBadAck(t *testing.T) {
	col := newV2Collector(t, "tcp")
	col.badAckOnce = true
	ls, err := New("tcp", col.addr(), &Config{Acks: true, MinBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	for i := range 10 {
		ls.Log(fmt.Sprint("m", i))
	}
	if err := ls.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	msgs, _ := col.distinct()
	if len(msgs) != 10 {
		t.Fatalf("%d distinct frames; want 10", len(msgs))
	}
	st := ls.Stats()
	if st.Reconnects != 1 || st.Acked != 10 || !errors.Is(ls.link.lastError(), errBadAck) {
		t.Fatalf("Stats %+v, last error %v; want 1 reconnect, 10 acknowledged, errBadAck", st, ls.link.lastError())
	}
}

// TestAcksOverflow: frames written and not acknowledged count against
// BufferBytes: DropOldest drops the oldest of them, counted; Block waits
// for the acknowledgements, and fails at WriteTimeout.
func TestAcksOverflow(t *testing.T) {
	t.Parallel()
	for _, policy := range []Overflow{DropOldest, Block} {
		t.Run(map[Overflow]string{DropOldest: "DropOldest", Block: "Block"}[policy], func(t *testing.T) {
			t.Parallel()
			col := newV2Collector(t, "unix")
			col.noAcks = true
			ls, err := New("unix", col.addr(), &Config{Acks: true, BufferBytes: 10 * (header2Len + 100), Overflow: policy,
				WriteTimeout: 200 * time.Millisecond, CloseTimeout: 100 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			msg := strings.Repeat("x", 100)
			var errs int
			for range 15 {
				if err := ls.Log(msg); err != nil {
					if !errors.Is(err, ErrBufferFull) {
						t.Fatal(err)
					}
					errs++
				}
			}
			st := ls.Stats()
			switch policy {
			case DropOldest:
				if errs != 0 || st.Dropped != 5 || st.Held != 10 {
					t.Errorf("%d errors, Stats %+v; want none, 5 dropped, 10 held", errs, st)
				}
			case Block:
				if errs != 5 || st.Dropped != 5 || st.Held != 10 {
					t.Errorf("%d errors, Stats %+v; want 5 ErrBufferFull, 5 dropped, 10 held", errs, st)
				}
			}
			ls.Close()
		})
	}
}

// TestAcksCollectorLimit: the collector's hello tells its MaxFrame: frames
// held above it are dropped and reported, and Log refuses them from then
// on, rather than sending one that would end the connection.
func TestAcksCollectorLimit(t *testing.T) {
	col := newV2Collector(t, "tcp")
	col.maxFrame = 1000
	ls, err := New("tcp", col.addr(), &Config{Acks: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	ls.Log("small")
	if err := ls.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := ls.Log(strings.Repeat("x", 2000)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("Log of 2,000 bytes: %v; want ErrFrameTooLarge", err)
	}
	ls.Log("after")
	if err := ls.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if msgs, _ := col.distinct(); strings.Join(msgs, ",") != "small,after" {
		t.Fatalf("collector got %q", msgs)
	}
}

// TestWallClock: a v2 frame's time, read from a base and the monotonic
// clock, is the wall clock's, and a base older than a
// second is taken again (one whose wall time is wrong, as after a step of
// the wall clock, is left within a second).
func TestWallClock(t *testing.T) {
	var c wallClock
	for range 10000 {
		before := time.Now().UnixNano()
		got := c.now()
		after := time.Now().UnixNano()
		// A base is read as two clocks, and so are before and after: a
		// thread stopped between the two (a busy machine) can put them
		// apart, up to newBase's check.
		const slack = int64(time.Millisecond)
		if got < before-slack || got > after+slack {
			t.Fatalf("now %d, between %d and %d", got, before, after)
		}
	}
	c.base.Store(&clockBase{t: time.Now().Add(-2 * rebase), unix: 0})
	before := time.Now().UnixNano()
	if got := c.now(); got < before {
		t.Fatalf("now %d from a stale base: want the wall clock, at least %d", got, before)
	}
}

// TestSentQueueRuns: frames written from chunks and from held wait in sent
// in order, a chunk at least half full as it is and the others as copies;
// acknowledgements release whole runs and parts of runs, a refused frame
// inside a chunk leaves alone, counted, and a chunk comes back for reuse
// only once its last frame has left.
func TestSentQueueRuns(t *testing.T) {
	f := framing{v2: true}
	q := newQueue(&Config{BufferBytes: 1 << 20}, f, 4096, 0)
	msg := []byte(strings.Repeat("m", 100))
	size := f.size(len(msg)) // 117 bytes: 20 frames fill a chunk past half
	chunkOf := func(frames int) *chunk {
		k := &chunk{buf: make([]byte, q.chunkLen)}
		q.outside += len(k.buf) // as installChunk counts it
		for i := range frames {
			f.put(k.buf[i*size:], msg, meta{})
		}
		k.used, k.frames = frames*size, frames
		k.first, k.last = q.numberFrames(k.buf[:k.used])
		return k
	}
	check := func(step string, frames int, first uint64, free int) {
		t.Helper()
		if q.sent.frames != frames || q.sent.len() != frames*size || frames > 0 && q.sentFirst != first || len(q.free) != free || q.outside != 0 {
			t.Fatalf("%s: %d frames, %d bytes, first %d, %d chunks free, %d bytes outside; want %d, %d, %d, %d, 0",
				step, q.sent.frames, q.sent.len(), q.sentFirst, len(q.free), q.outside, frames, frames*size, first, free)
		}
	}

	q.toSentChunk(chunkOf(20)) // 1-20, kept
	var held []byte
	for range 3 { // 21-23, from held
		held = append(held, make([]byte, size)...)
		f.put(held[len(held)-size:], msg, meta{seq: q.number()})
	}
	q.toSent(held, 3)
	q.toSentChunk(chunkOf(5))  // 24-28, sparse: copied, and free at once
	q.toSentChunk(chunkOf(20)) // 29-48, kept
	check("written", 48, 1, 1)
	if n := len(q.sent.runs) - q.sent.head; n != 3 {
		t.Fatalf("%d runs, want 3: the first chunk, a block of 21-28, the last chunk", n)
	}

	q.releaseAcked(10, 0)
	check("10 acknowledged", 38, 11, 1) // the first chunk still holds 11-20
	q.releaseAcked(20, 0)
	check("20 acknowledged", 28, 21, 2)
	q.releaseAcked(29, 0)
	q.releaseAcked(30, refusedTooLarge)
	check("30 refused", 18, 31, 2)
	if q.dropped.Load() != 1 || !errors.Is(q.refused, ErrFrameTooLarge) || q.ackCount.Load() != 29 {
		t.Fatalf("dropped %d, refused %v, acknowledged %d; want 1, ErrFrameTooLarge, 29", q.dropped.Load(), q.refused, q.ackCount.Load())
	}

	b := q.sent.bytes() // what a new connection sends again
	if len(b) != 18*size || f.seqLow(b) != 31 || f.seqLow(b[17*size:]) != 48 {
		t.Fatalf("sent's bytes: %d, numbered %d to %d; want %d, 31 to 48", len(b), f.seqLow(b), f.seqLow(b[17*size:]), 18*size)
	}
	q.dropAllSent()
	check("dropped", 0, 0, 3)
}

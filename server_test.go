package logsock_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/logsocktest"
)

// TestServerRecords: each record carries its connection, the handshake pid,
// the message and a time.
func TestServerRecords(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			sink := logsocktest.NewSink()
			srv := sink.Server()
			srv.Order = logsock.BigEndian
			addr := logsocktest.Serve(t, network, srv)
			start := time.Now()
			c1 := logsocktest.RawConn(t, network, addr, logsocktest.Frames(logsock.BigEndian, 101, "a1", "a2"))
			sink.WaitRecords(t, 2)
			c2 := logsocktest.RawConn(t, network, addr, logsocktest.Frames(logsock.BigEndian, 202, "b1"))
			recs := sink.WaitRecords(t, 3)
			c1.Close()
			c2.Close()
			if ends := sink.WaitEnds(t, 2); ends[0] != nil || ends[1] != nil {
				t.Errorf("ends %v, want clean", ends)
			}
			want := []struct {
				pid int32
				msg string
			}{{101, "a1"}, {101, "a2"}, {202, "b1"}}
			for i, w := range want {
				r := recs[i]
				if r.Pid != w.pid || string(r.Msg) != w.msg || r.Time.Before(start) || r.Time.After(time.Now()) {
					t.Errorf("record %d = %+v, want pid %d msg %q", i, r, w.pid, w.msg)
				}
			}
			if recs[0].Conn != recs[1].Conn || recs[0].Conn == recs[2].Conn {
				t.Errorf("connection ids %d %d %d", recs[0].Conn, recs[1].Conn, recs[2].Conn)
			}
			// Over TCP each record names the client's address, which tells
			// apart the pids of different hosts.
			if network == "tcp" {
				for i, c := range []net.Conn{c1, c1, c2} {
					if r := recs[i].Remote; r == nil || r.String() != c.LocalAddr().String() {
						t.Errorf("record %d from %v, want %v", i, r, c.LocalAddr())
					}
				}
			}
		})
	}
}

// TestServerBadConnIsolated: a connection that breaks the format is
// closed with its reason; another, open before and after, goes on.
func TestServerBadConnIsolated(t *testing.T) {
	for _, tc := range []struct {
		name    string
		stream  []byte
		wantErr error
	}{
		{"negative length", append(logsocktest.Frames(0, 9, "ok"), 0xff, 0xff, 0xff, 0xff), logsock.ErrNegativeLength},
		{"too large", append(logsocktest.Frames(0, 9), 0x01, 0x00, 0x10, 0x00), logsock.ErrFrameTooLarge},
		{"truncated body", append(logsocktest.Frames(0, 9), 5, 0, 0, 0, 'a', 'b'), io.ErrUnexpectedEOF},
		{"truncated header", append(logsocktest.Frames(0, 9), 5, 0), io.ErrUnexpectedEOF},
		{"truncated handshake", []byte{9, 0}, io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := logsocktest.NewSink()
			addr := logsocktest.Serve(t, "tcp", sink.Server())
			good := logsocktest.RawConn(t, "tcp", addr, logsocktest.Frames(0, 1, "good 1"))
			sink.WaitRecords(t, 1)

			bad := logsocktest.RawConn(t, "tcp", addr, tc.stream)
			bad.(*net.TCPConn).CloseWrite() // end the stream where it is
			ends := sink.WaitEnds(t, 1)
			if !errors.Is(ends[0], tc.wantErr) {
				t.Fatalf("bad connection ended with %v, want %v", ends[0], tc.wantErr)
			}
			var pe *logsock.ProtocolError
			if !errors.As(ends[0], &pe) {
				t.Errorf("reason %v is not a *ProtocolError", ends[0])
			}

			if _, err := good.Write(logsocktest.Frames(0, 1, "good 2")[4:]); err != nil {
				t.Fatal(err)
			}
			sink.Wait(t, `"good 2"`, func(recs []logsock.Record, _ []error) bool {
				return string(recs[len(recs)-1].Msg) == "good 2"
			})
			for _, r := range sink.WaitRecords(t, 2) {
				if r.Pid == 9 && string(r.Msg) != "ok" {
					t.Errorf("bad connection delivered %q", r.Msg)
				}
			}
		})
	}
}

// TestServerHandshakeTimeout: a client that connects and sends nothing
// is closed after the timeout; the others are not.
func TestServerHandshakeTimeout(t *testing.T) {
	t.Parallel()
	sink := logsocktest.NewSink()
	srv := sink.Server()
	srv.HandshakeTimeout = 50 * time.Millisecond
	addr := logsocktest.Serve(t, localNetwork, srv)
	good := logsocktest.RawConn(t, localNetwork, addr, logsocktest.Frames(0, 1, "early"))
	sink.WaitRecords(t, 1)
	silent := logsocktest.RawConn(t, localNetwork, addr)
	if ends := sink.WaitEnds(t, 1); srv.Stats().Ends[logsock.ReasonHandshakeTimeout] != 1 {
		t.Fatalf("silent connection ended with %v; ends %v", ends[0], srv.Stats().Ends)
	}
	// The collector closed it without a byte: the client reads EOF.
	if n, err := silent.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("silent client read %d, %v; want 0, EOF", n, err)
	}
	// The timeout covers the handshake only: a quiet client stays.
	if _, err := good.Write(logsocktest.Frames(0, 1, "late")[4:]); err != nil {
		t.Fatal(err)
	}
	if recs := sink.WaitRecords(t, 2); string(recs[1].Msg) != "late" {
		t.Errorf("record %q", recs[1].Msg)
	}
}

// TestServerShutdownDrains: frames already sent when Shutdown starts are
// delivered, even those still in the kernel's buffers; a connection that
// stays open and quiet at a frame boundary ends; one inside a frame is
// waited for until Shutdown's context ends, then cut: the partial frame
// is reported and counted, not delivered.
func TestServerShutdownDrains(t *testing.T) {
	sink := logsocktest.NewSink()
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	srv := &logsock.Server{
		Handler: func(rec *logsock.Record) {
			if string(rec.Msg) == "first" {
				entered <- struct{}{}
				<-release // hold the reader while more arrives
			}
			sink.Handle(rec)
		},
		ConnClosed: sink.ConnClosed,
	}
	l := logsocktest.Listen(t, localNetwork)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	whole := logsocktest.RawConn(t, localNetwork, l.Addr().String(), logsocktest.Frames(0, 1, "first"))
	<-entered
	var rest []string
	for i := range 100 {
		rest = append(rest, string(rune('a'+i%26)))
	}
	if _, err := whole.Write(logsocktest.Frames(0, 1, rest...)[4:]); err != nil {
		t.Fatal(err)
	}
	// The partial frame is sent after a whole one, so that its
	// connection is known to be accepted before Shutdown.
	partial := logsocktest.RawConn(t, localNetwork, l.Addr().String(), logsocktest.Frames(0, 2, "done"))
	sink.Wait(t, `"done"`, func(recs []logsock.Record, _ []error) bool { return len(recs) > 0 && recs[len(recs)-1].Pid == 2 })
	if _, err := partial.Write([]byte{9, 0, 0, 0, 'x'}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(ctx) }()
	// Let the reader go on only once Shutdown waits, its drain begun: the
	// 100 frames are then still in the kernel's buffer.
	waitForStack(t, "[select]", "(*Server).Shutdown")
	close(release)
	// The first connection ends, quiet at a frame boundary; the second
	// waits for the rest of its frame.
	sink.WaitEnds(t, 1)
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a frame still arriving", err)
	default:
	}
	cancel()
	if err := <-shut; !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown: %v, want context.Canceled", err)
	}
	if err := <-served; !errors.Is(err, logsock.ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
	recs := sink.WaitRecords(t, 2+len(rest))
	var got []string
	for _, r := range recs {
		if r.Pid == 1 {
			got = append(got, string(r.Msg))
		}
	}
	if len(got) != 1+len(rest) {
		t.Errorf("connection 1 delivered %d of %d frames", len(got), 1+len(rest))
	}
	ends := sink.WaitEnds(t, 2)
	var truncated, closed int
	for _, e := range ends {
		switch {
		case errors.Is(e, io.ErrUnexpectedEOF):
			truncated++
		case errors.Is(e, logsock.ErrServerClosed):
			closed++
		}
	}
	if truncated != 1 || closed != 1 {
		t.Errorf("ends %v: want one truncated and one ErrServerClosed", ends)
	}
	if cut := srv.Stats().Cut; cut != 1 {
		t.Errorf("Stats().Cut = %d, want 1: the partial frame", cut)
	}
}

// TestServerServeAfterClose: a closed Server serves nothing.
func TestServerServeAfterClose(t *testing.T) {
	srv := &logsock.Server{}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(logsocktest.Listen(t, "tcp")); !errors.Is(err, logsock.ErrServerClosed) {
		t.Fatalf("Serve after Close: %v", err)
	}
}

// TestServerShutdownDeadline: a Handler that does not return keeps
// Shutdown only until its context ends.
func TestServerShutdownDeadline(t *testing.T) {
	t.Parallel()
	block := make(chan struct{})
	entered := make(chan struct{})
	srv := &logsock.Server{Handler: func(*logsock.Record) { close(entered); <-block }}
	l := logsocktest.Listen(t, "tcp")
	go srv.Serve(l)
	logsocktest.RawConn(t, "tcp", l.Addr().String(), logsocktest.Frames(0, int32(os.Getpid()), "stuck"))
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	go func() { <-ctx.Done(); close(block) }() // let it go once Shutdown gives up
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want context.DeadlineExceeded", err)
	}
}

// gatedListener holds Accept until the first SetDeadline: a Serve loop
// that has not yet accepted what clients opened.
type gatedListener struct {
	net.Listener
	gate chan struct{}
	once sync.Once
}

func (g *gatedListener) Accept() (net.Conn, error) {
	<-g.gate
	return g.Listener.Accept()
}

func (g *gatedListener) SyscallConn() (syscall.RawConn, error) {
	return g.Listener.(syscall.Conn).SyscallConn()
}

func (g *gatedListener) SetDeadline(t time.Time) error {
	g.once.Do(func() { close(g.gate) })
	return g.Listener.(interface{ SetDeadline(time.Time) error }).SetDeadline(t)
}

// TestServerShutdownAcceptsQueued: a connection opened but not yet
// accepted when Shutdown begins is accepted and drained, not reset with
// its frames: both when its frames are already queued, and when they come
// an instant after Shutdown has accepted it (a client that reconnected
// with held frames): the drain waits for a connection that has sent
// nothing yet.
func TestServerShutdownAcceptsQueued(t *testing.T) {
	t.Parallel()
	unixOnly(t, "Shutdown resets the connections still queued (Server.Shutdown)")
	for _, network := range []string{"tcp", "unix"} {
		for _, late := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/late=%v", network, late), func(t *testing.T) {
				t.Parallel()
				// drainQueued finds the drain waiting by the stacks of this
				// subtest's goroutines only: another Server's drain, in a
				// test run beside it, is not this one's (in CI, a write
				// after this drain had ended met a closed connection).
				ownStacks(t)
				// The late frames must come while the drain waits for them,
				// a short wait (drainQuiet, 250 ms), and a busy machine can
				// keep this goroutine from seeing the wait, or from writing,
				// for that long (issue 17: 100 ms then): such a try proves
				// nothing, and is made again. A drain that does not wait
				// fails every try.
				const tries = 3
				for try := 1; !drainQueued(t, network, late); try++ {
					if try == tries {
						t.Fatalf("in %d tries, the drain never waited for the silent connection until its frames came", tries)
					}
				}
			})
		}
	}
}

// drainQueued is one try of TestServerShutdownAcceptsQueued. It reports
// false if the late frames were written after the drain had ended.
func drainQueued(t *testing.T, network string, late bool) bool {
	t.Helper()
	sink := logsocktest.NewSink()
	var ended atomic.Int64 // when the connection ended, in Unix nanoseconds
	srv := &logsock.Server{Handler: sink.Handle, ConnClosed: func(info logsock.ConnInfo, err error) {
		ended.Store(time.Now().UnixNano())
		sink.ConnClosed(info, err)
	}}
	l := &gatedListener{Listener: logsocktest.Listen(t, network), gate: make(chan struct{})}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	stream := logsocktest.Frames(0, 7, "queued 1", "queued 2")
	c := logsocktest.RawConn(t, network, l.Addr().String()) // queued
	if !late {
		if _, err := c.Write(stream); err != nil {
			t.Fatal(err)
		}
	}
	waitForStack(t, "(*gatedListener).Accept")
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.Background()) }()
	var shutErr error
	shutDone := false
	var writing time.Time // when the late write began
	// The late connection is silent until the drain waits for it.
	if late {
		id, _ := stackIDs.Load(t)
		var buf bytes.Buffer
		waitUntil(t, "the drain to wait for the silent connection, or Shutdown to end", func() bool {
			select {
			case shutErr = <-shut:
				shutDone = true
				return true
			default:
				return ownStackShows(&buf, id.(string), "(*serverConn).waitReadable")
			}
		})
		if !shutDone {
			writing = time.Now()
			if _, err := c.Write(stream); err != nil {
				// The drain gave up on the connection between the look
				// and the write: a machine that kept this goroutine
				// from writing for drainQuiet proves nothing.
				t.Logf("the late write failed (%v); again", err)
				<-shut
				<-served
				sink.WaitEnds(t, 1)
				return false
			}
		}
	}
	if !shutDone {
		shutErr = <-shut
	}
	if shutErr != nil {
		t.Fatal(shutErr)
	}
	if err := <-served; !errors.Is(err, logsock.ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
	sink.WaitEnds(t, 1)
	if late && (writing.IsZero() || writing.UnixNano() > ended.Load()) {
		t.Logf("the late frames were not written while the drain waited (Shutdown ended first: %v); again", writing.IsZero())
		return false
	}
	if got := msgs(sink.WaitRecords(t, 2)); fmt.Sprint(got) != "[queued 1 queued 2]" {
		t.Errorf("records %q", got)
	}
	return true
}

// TestServerIdleConnMemory: a connection that has sent and gone quiet
// holds no read buffer: 1,000 of them cost little (the goal: under 8 KiB
// each, goroutine included; the client's ends, in this process too, are
// counted against it).
func TestServerIdleConnMemory(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes memory use")
	}
	unixOnly(t, "an idle connection keeps its read buffer (Server)")
	const n = 1000
	sink := logsocktest.NewSink()
	addr := logsocktest.Serve(t, "unix", sink.Server())
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	conns := make([]net.Conn, 0, n)
	for i := range n {
		c, err := net.Dial("unix", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write(logsocktest.Frames(0, int32(i+1), "hello")); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	sink.WaitRecords(t, n)
	// Every connection's goroutine parks in waitReadable once its buffer
	// is given back.
	buf := make([]byte, 64<<20)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(time.Millisecond) {
		k := runtime.Stack(buf, true)
		if bytes.Count(buf[:k], []byte("(*serverConn).waitReadable")) >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the idle connections did not all park")
		}
	}
	buf = nil
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := (int64(after.HeapAlloc+after.StackInuse) - int64(before.HeapAlloc+before.StackInuse)) / n
	t.Logf("%d idle connections: %d bytes each (heap and stacks, both ends)", n, per)
	if per > 8<<10 {
		t.Errorf("%d bytes per idle connection, want under 8 KiB", per)
	}
	_ = conns
}

package logsock_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/logsocktest"
)

// unixOnly skips the test on Windows, for the reason why.
func unixOnly(t testing.TB, why string) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("not on Windows: " + why)
	}
}

// The environment variables of the inheritance contract (PROTOCOL.md).
const (
	envNetwork = "LOGSOCK_NETWORK"
	envAddress = "LOGSOCK_ADDRESS"
	envOrder   = "LOGSOCK_ORDER"
	envFD      = "LOGSOCK_FD"
	envSocket  = "LOGSOCK_SOCKET"
	envLockFD  = "LOGSOCK_LOCK_FD"
)

// inMode returns cfg in batching mode, with a FlushDelay of a millisecond,
// or in direct mode, where a FlushDelay is refused.
func inMode(batching bool, cfg *logsock.Config) *logsock.Config {
	cfg.Batching = batching
	if batching {
		cfg.FlushDelay = time.Millisecond
	}
	return cfg
}

// waitUntil polls cond, a state that no event signals (a goroutine of the
// library's changes it), until it holds, or fails the test after a
// generous 20 s.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// connLog is a Sink that also keeps, for each connection that ended, its
// ConnInfo and error, paired.
type connLog struct {
	*logsocktest.Sink
	mu   sync.Mutex
	ends []connEnd
}

type connEnd struct {
	info logsock.ConnInfo
	err  error
}

func newConnLog() *connLog { return &connLog{Sink: logsocktest.NewSink()} }

func (l *connLog) Server() *logsock.Server {
	return &logsock.Server{Handler: l.Handle, ConnClosed: l.ConnClosed}
}

func (l *connLog) ConnClosed(info logsock.ConnInfo, err error) {
	l.mu.Lock()
	l.ends = append(l.ends, connEnd{info, err})
	l.mu.Unlock()
	l.Sink.ConnClosed(info, err) // after: a waiter on the Sink then finds the pair here
}

// waitEnd waits until the connection that ok picks out has ended, and
// returns its end.
func (l *connLog) waitEnd(t testing.TB, what string, ok func(logsock.ConnInfo) bool) connEnd {
	t.Helper()
	var found connEnd
	l.Wait(t, what, func([]logsock.Record, []error) bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, e := range l.ends {
			if ok(e.info) {
				found = e
				return true
			}
		}
		return false
	})
	return found
}

// waitConnEnd waits for connection id to end.
func (l *connLog) waitConnEnd(t testing.TB, id uint64) connEnd {
	t.Helper()
	return l.waitEnd(t, fmt.Sprintf("connection %d to end", id), func(i logsock.ConnInfo) bool { return i.Conn == id })
}

// endsWith returns the ends of the given reason so far.
func (l *connLog) endsWith(r logsock.Reason) []connEnd {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []connEnd
	for _, e := range l.ends {
		if e.info.Reason == r {
			out = append(out, e)
		}
	}
	return out
}

// recordsOf returns copies of the records of connection id so far.
func (l *connLog) recordsOf(id uint64) []logsock.Record {
	var out []logsock.Record
	for _, r := range l.Records() {
		if r.Conn == id {
			out = append(out, r)
		}
	}
	return out
}

// waitMsg waits for a record whose message is msg and returns it.
func (l *connLog) waitMsg(t testing.TB, msg string) logsock.Record {
	t.Helper()
	var found logsock.Record
	l.Wait(t, fmt.Sprintf("record %q", msg), func(recs []logsock.Record, _ []error) bool {
		for _, r := range recs {
			if string(r.Msg) == msg {
				found = r
				return true
			}
		}
		return false
	})
	return found
}

// bystander is a well-behaved client kept open beside hostile ones: every
// frame it sends must arrive, in order, whatever the others do.
type bystander struct {
	log  *connLog
	c    net.Conn
	id   uint64 // its connection's id at the Server
	sent int
}

// newBystander connects, sends a first frame and waits for it.
func newBystander(t *testing.T, log *connLog, network, addr string) *bystander {
	t.Helper()
	b := &bystander{log: log, c: logsocktest.RawConn(t, network, addr, logsocktest.Frames(0, int32(os.Getpid())))}
	b.id = b.send(t).Conn
	return b
}

// send sends the next frame and waits for its record.
func (b *bystander) send(t *testing.T) logsock.Record {
	t.Helper()
	msg := fmt.Sprintf("bystander %d", b.sent)
	b.sent++
	frame := logsock.AppendFrame(nil, logsock.LittleEndian, []byte(msg))
	if _, err := b.c.Write(frame); err != nil {
		t.Fatalf("bystander: %v", err)
	}
	return b.log.waitMsg(t, msg)
}

// check sends one more frame, then checks that the connection delivered
// every frame, in order, and is still open.
func (b *bystander) check(t *testing.T) {
	t.Helper()
	b.send(t)
	recs := b.log.recordsOf(b.id)
	if len(recs) != b.sent {
		t.Errorf("bystander: %d records, sent %d", len(recs), b.sent)
	}
	for i, r := range recs {
		if want := fmt.Sprintf("bystander %d", i); string(r.Msg) != want {
			t.Errorf("bystander record %d: %q, want %q", i, r.Msg, want)
		}
	}
}

func dial(t testing.TB, network, address string, cfg *logsock.Config) *logsock.LogSocket {
	t.Helper()
	ls, err := logsock.Dial(network, address, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ls.Close() })
	return ls
}

// waitWriteBlocked waits until a write of ls on connection id of col
// waits for room in the socket's send buffer, and can get none until col
// reads. On TCP a write can wait for a moment, then go on as the kernel
// grows the send buffer (issue 17: a stack sampled in such a moment, and
// the kernel then took all 57 frames of 64 KiB that were logged): the
// write must wait while col's side advertises a zero window. A Unix
// socket's writer waits on its own buffer, which only a read frees. On
// Windows an overlapped send can wait in the poller, then complete with
// the buffer far from full (seen under Wine 8), so the write must also
// have gone on for a while without a frame written.
func waitWriteBlocked(t *testing.T, ls *logsock.LogSocket, col *logsocktest.FakeCollector, id uint64) {
	t.Helper()
	if runtime.GOOS != "windows" {
		col.WaitConns(t, int(id))
		buf := make([]byte, 1<<20)
		// The window first: once it is closed, a write that waits waits
		// for good.
		waitUntil(t, fmt.Sprintf("a write blocked on connection %d, its window closed", id), func() bool {
			return col.WindowClosed(t, id) && stackShows(buf, "github.com/logsock/logsock.", "internal/poll.(*pollDesc).waitWrite")
		})
		return
	}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		waitForStack(t, "(*frameWriter).send", "internal/poll.(*pollDesc).wait")
		frames := ls.Stats().Frames
		time.Sleep(100 * time.Millisecond)
		if ls.Stats().Frames == frames {
			return
		}
	}
	t.Fatal("no write of the LogSocket stayed blocked")
}

// waitForStack waits until some goroutine's stack shows all of frames: the
// only way to know that a goroutine is blocked inside a call. Of a test
// that called ownStacks, only its own goroutines count.
func waitForStack(t *testing.T, frames ...string) {
	t.Helper()
	if id, ok := stackIDs.Load(t); ok {
		var buf bytes.Buffer
		waitUntil(t, fmt.Sprintf("a goroutine of the test in %q", frames), func() bool {
			return ownStackShows(&buf, id.(string), frames...)
		})
		return
	}
	buf := make([]byte, 1<<20)
	waitUntil(t, fmt.Sprintf("a goroutine in %q", frames), func() bool { return stackShows(buf, frames...) })
}

// stackLabel is the pprof label that ownStacks gives a test's goroutines.
const stackLabel = "logsock_test"

var (
	stackIDs    sync.Map // *testing.T: the value of its stackLabel
	lastStackID atomic.Int64
)

// ownStacks gives t's goroutine a pprof label of its own, which the
// goroutines that it starts inherit, and those that they start (the
// library's among them), so that waitForStack looks at them only: t can
// then run in parallel with tests whose goroutines wait in the same
// functions. It must come before t starts a goroutine. A goroutine that a
// timer starts (time.AfterFunc) has no label: waitForStack must not wait
// for one.
func ownStacks(t *testing.T) {
	id := strconv.FormatInt(lastStackID.Add(1), 10)
	stackIDs.Store(t, id)
	t.Cleanup(func() { stackIDs.Delete(t) })
	pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), pprof.Labels(stackLabel, id)))
}

// ownStackShows reports whether some goroutine labelled id by ownStacks
// shows all of frames now, in the goroutine profile (debug=1: the
// functions of each stack, with its labels); buf holds the profile.
func ownStackShows(buf *bytes.Buffer, id string, frames ...string) bool {
	buf.Reset()
	if err := pprof.Lookup("goroutine").WriteTo(buf, 1); err != nil {
		panic(err)
	}
	label := []byte(fmt.Sprintf("%q:%q", stackLabel, id)) // as in "# labels: {...}"
	for g := range bytes.SplitSeq(buf.Bytes(), []byte("\n\n")) {
		all := bytes.Contains(g, label)
		for _, f := range frames {
			all = all && bytes.Contains(g, []byte(f))
		}
		if all {
			return true
		}
	}
	return false
}

// stackShows reports whether some goroutine's stack shows all of frames
// now; buf holds the stacks.
func stackShows(buf []byte, frames ...string) bool {
	n := runtime.Stack(buf, true)
	for g := range bytes.SplitSeq(buf[:n], []byte("\n\n")) {
		all := true
		for _, f := range frames {
			all = all && bytes.Contains(g, []byte(f))
		}
		if all {
			return true
		}
	}
	return false
}

// wantRecord waits for record i (from 0) of col, which must be msg on
// connection conn, whose handshake named this process.
func wantRecord(t *testing.T, col *logsocktest.FakeCollector, i int, conn uint64, msg string) {
	t.Helper()
	r := col.WaitRecords(t, i+1)[i]
	if string(r.Msg) != msg || r.Conn != conn || r.Pid != int32(os.Getpid()) {
		t.Fatalf("record %d: %q on connection %d, handshake pid %d; want %q on connection %d, pid %d",
			i, r.Msg, r.Conn, r.Pid, msg, conn, os.Getpid())
	}
}

func flush(t *testing.T, ls *logsock.LogSocket) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ls.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

func msgs(recs []logsock.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, string(r.Msg))
	}
	return out
}

// logWithin logs msg and returns the call's error; it fails the test if
// the call has not returned within d (generous: it tells "at once" from a
// wait of a minute). A call still waiting then is ended by Close.
func logWithin(t *testing.T, ls *logsock.LogSocket, msg string, d time.Duration) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- ls.Log(msg) }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("Log(%.20q) has not returned after %v", msg, d)
		return nil
	}
}

func short(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}

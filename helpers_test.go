package logsock_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/logsock/logsock"
)

// socketPath returns a Unix socket path in a short temporary directory:
// t.TempDir can exceed sun_path's 108 bytes. On Windows, where logsock
// does not promise Unix sockets, it skips the test.
func socketPath(t testing.TB) string {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("Unix sockets: not promised on Windows")
	}
	dir, err := os.MkdirTemp("", "ls")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "s")
}

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

// readPid reads exactly a handshake from r, and no more, as a collector
// that reads the handshake and stops does.
func readPid(r io.Reader, order logsock.ByteOrder) (int32, error) {
	var b [logsock.HeaderLen]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, err
	}
	return logsock.NewDecoder(bytes.NewReader(b[:]), &logsock.DecoderConfig{Order: order}).Handshake()
}

// inMode returns cfg in batching mode, with a FlushDelay of a millisecond,
// or in direct mode, where a FlushDelay is refused.
func inMode(batching bool, cfg *logsock.Config) *logsock.Config {
	cfg.Batching = batching
	if batching {
		cfg.FlushDelay = time.Millisecond
	}
	return cfg
}

// listen returns a listener on loopback TCP or on a Unix socket in a
// short temporary directory.
func listen(t testing.TB, network string) net.Listener {
	t.Helper()
	address := "127.0.0.1:0"
	if network == "unix" {
		address = socketPath(t)
	}
	l, err := net.Listen(network, address)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// serve runs srv on a new listener of network until the test ends, and
// returns the address to dial.
func serve(t testing.TB, network string, srv *logsock.Server) string {
	t.Helper()
	l := listen(t, network)
	serveOn(t, srv, l)
	waitServing(t, l)
	return l.Addr().String()
}

// serveOn runs srv on l until the test ends, or until stop, which shuts
// it down gracefully and checks how Serve ended.
func serveOn(t testing.TB, srv *logsock.Server, l net.Listener) (stop func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			if err := <-done; !errors.Is(err, logsock.ErrServerClosed) {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
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

// sink collects the records a Server hands over, copying each message,
// and the reasons its connections ended.
type sink struct {
	mu      sync.Mutex
	recs    []logsock.Record
	ends    []error
	changed chan struct{} // receives a value after each change, if there is room
}

func newSink() *sink { return &sink{changed: make(chan struct{}, 1)} }

func (s *sink) server() *logsock.Server {
	return &logsock.Server{Handler: s.record, ConnClosed: s.closed}
}

func (s *sink) record(rec *logsock.Record) {
	s.mu.Lock()
	r := *rec
	r.Msg = append([]byte(nil), rec.Msg...)
	s.recs = append(s.recs, r)
	s.mu.Unlock()
	s.signal()
}

func (s *sink) closed(_ logsock.ConnInfo, err error) {
	s.mu.Lock()
	s.ends = append(s.ends, err)
	s.mu.Unlock()
	s.signal()
}

func (s *sink) signal() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// wait blocks until cond holds for the sink's state, or fails the test
// after a generous timeout.
func (s *sink) wait(t testing.TB, what string, cond func(recs []logsock.Record, ends []error) bool) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		s.mu.Lock()
		ok := cond(s.recs, s.ends)
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-s.changed:
		case <-timeout:
			s.mu.Lock()
			defer s.mu.Unlock()
			t.Fatalf("timed out waiting for %s: %d records, ends %v", what, len(s.recs), s.ends)
		}
	}
}

// waitRecords waits for n records and returns a copy of them.
func (s *sink) waitRecords(t testing.TB, n int) []logsock.Record {
	t.Helper()
	s.wait(t, "records", func(recs []logsock.Record, _ []error) bool { return len(recs) >= n })
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]logsock.Record(nil), s.recs...)
}

// waitEnds waits for n connections to end and returns their reasons.
func (s *sink) waitEnds(t testing.TB, n int) []error {
	t.Helper()
	s.wait(t, "connection ends", func(_ []logsock.Record, ends []error) bool { return len(ends) >= n })
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]error(nil), s.ends...)
}

// connLog is a sink that also keeps, for each connection that ended, its
// ConnInfo and error, paired.
type connLog struct {
	*sink
	mu   sync.Mutex
	ends []connEnd
}

type connEnd struct {
	info logsock.ConnInfo
	err  error
}

func newConnLog() *connLog { return &connLog{sink: newSink()} }

func (l *connLog) server() *logsock.Server {
	return &logsock.Server{Handler: l.record, ConnClosed: l.closed}
}

func (l *connLog) closed(info logsock.ConnInfo, err error) {
	l.mu.Lock()
	l.ends = append(l.ends, connEnd{info, err})
	l.mu.Unlock()
	l.sink.closed(info, err) // after: a sink's waiter then finds the pair here
}

// waitEnd waits until the connection that ok picks out has ended, and
// returns its end.
func (l *connLog) waitEnd(t testing.TB, what string, ok func(logsock.ConnInfo) bool) connEnd {
	t.Helper()
	var found connEnd
	l.wait(t, what, func([]logsock.Record, []error) bool {
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
	l.sink.mu.Lock()
	defer l.sink.mu.Unlock()
	var out []logsock.Record
	for _, r := range l.recs {
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
	l.wait(t, fmt.Sprintf("record %q", msg), func(recs []logsock.Record, _ []error) bool {
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
	b := &bystander{log: log, c: rawConn(t, network, addr, frames(0, int32(os.Getpid())))}
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

// formatRecords lists recs, a line each, for a failure's message.
func formatRecords(recs []logsock.Record) string {
	var b bytes.Buffer
	for _, r := range recs {
		fmt.Fprintf(&b, "conn=%d pid=%d %q\n", r.Conn, r.Pid, r.Msg)
	}
	return b.String()
}

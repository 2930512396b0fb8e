package logsock_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/logsock/logsock"
)

// socketPath returns a Unix socket path in a short temporary directory:
// t.TempDir can exceed sun_path's 108 bytes.
func socketPath(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ls")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "s")
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
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, logsock.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return l.Addr().String()
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

package logsocktest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/logsock/logsock"
)

// Sink collects the records a Server hands over, copying each message,
// and the reasons its connections ended. Tests wait for them with Wait,
// WaitRecords and WaitEnds. Its methods may be called from any goroutine.
type Sink struct {
	mu      sync.Mutex // guards recs and ends
	recs    []logsock.Record
	ends    []error
	changed chan struct{} // receives a value after each change, if there is room
}

// NewSink returns an empty Sink.
func NewSink() *Sink { return &Sink{changed: make(chan struct{}, 1)} }

// Server returns a Server that hands its records and connection ends to
// s.
func (s *Sink) Server() *logsock.Server {
	return &logsock.Server{Handler: s.Handle, ConnClosed: s.ConnClosed}
}

// Handle keeps a copy of rec: a Server's Handler.
func (s *Sink) Handle(rec *logsock.Record) {
	s.mu.Lock()
	r := *rec
	r.Msg = append([]byte(nil), rec.Msg...)
	s.recs = append(s.recs, r)
	s.mu.Unlock()
	s.signal()
}

// ConnClosed keeps err, the reason a connection ended: a Server's
// ConnClosed.
func (s *Sink) ConnClosed(_ logsock.ConnInfo, err error) {
	s.mu.Lock()
	s.ends = append(s.ends, err)
	s.mu.Unlock()
	s.signal()
}

func (s *Sink) signal() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// Wait blocks until cond holds for the records and ends so far, or fails the test
// after a generous timeout.
func (s *Sink) Wait(t testing.TB, what string, cond func(recs []logsock.Record, ends []error) bool) {
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

// WaitRecords waits for n records and returns a copy of them.
func (s *Sink) WaitRecords(t testing.TB, n int) []logsock.Record {
	t.Helper()
	s.Wait(t, "records", func(recs []logsock.Record, _ []error) bool { return len(recs) >= n })
	return s.Records()
}

// Records returns a copy of the records so far.
func (s *Sink) Records() []logsock.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]logsock.Record(nil), s.recs...)
}

// WaitEnds waits for n connections to end and returns their reasons.
func (s *Sink) WaitEnds(t testing.TB, n int) []error {
	t.Helper()
	s.Wait(t, "connection ends", func(_ []logsock.Record, ends []error) bool { return len(ends) >= n })
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]error(nil), s.ends...)
}

// WaitEnded waits until n connections, and every connection that
// delivered a record, have ended, and returns the records and why each
// connection ended. Call it once the clients have closed their
// connections: a connection's records all come before its end.
func (s *Sink) WaitEnded(t testing.TB, n int) ([]logsock.Record, []error) {
	t.Helper()
	s.Wait(t, fmt.Sprintf("%d connections to end", n), func(recs []logsock.Record, ends []error) bool {
		conns := map[uint64]bool{}
		for _, r := range recs {
			conns[r.Conn] = true
		}
		return len(ends) >= n && len(ends) >= len(conns)
	})
	return s.WaitRecords(t, 0), s.WaitEnds(t, n)
}

// WaitAllEnded is WaitEnded for one connection, or more, that must all
// end cleanly.
func (s *Sink) WaitAllEnded(t testing.TB) []logsock.Record {
	t.Helper()
	recs, ends := s.WaitEnded(t, 1)
	for i, err := range ends {
		if err != nil {
			t.Errorf("connection end %d: %v, want a clean close", i, err)
		}
	}
	return recs
}

// Reserve makes room for n more records, so that recording them does not
// allocate (a test that counts a connection's allocations).
func (s *Sink) Reserve(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs = slices.Grow(s.recs, n)
}

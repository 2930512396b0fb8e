package logsock_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/logsocktest"
)

// TestErrorsNameTheCause: a failed dial is an *OpError whose message names
// the collector once and whose chain holds the system's error; the error
// of a Flush or Close that gives up wraps ErrUndelivered, the context's
// error and that *OpError, each found with errors.Is or errors.As (issue
// 11, fault 5). A Flush that gives up keeps the frames held.
func TestErrorsNameTheCause(t *testing.T) {
	// Not in parallel: a test that listens meanwhile may take the port
	// that nothing listens on, and reset the dial (stress run).
	addr := logsocktest.FakeDown(t, "tcp", logsocktest.FakeDecode).Addr // nothing listens there
	_, err := logsock.Dial("tcp", addr, nil)
	var oe *logsock.OpError
	if !errors.As(err, &oe) || oe.Op != "dial" || oe.Addr != addr || !errors.Is(err, logsocktest.ErrConnRefused) {
		t.Fatalf("Dial: %v; want an *OpError of Op dial wrapping ECONNREFUSED", err)
	}
	if n := strings.Count(err.Error(), addr); n != 1 {
		t.Errorf("Dial: %q names the address %d times, want once", err, n)
	}
	var ne *net.OpError
	if errors.As(err, &ne) {
		t.Errorf("Dial: %q wraps a *net.OpError, which names the address again", err)
	}

	for _, batching := range []bool{false, true} {
		// One attempt, refused, and no other within the test: a dial that a
		// busy machine made slower than Flush's 20 ms would end with the
		// context's error, not the collector's (issue 17: "dial tcp ...:
		// i/o timeout").
		ls, err := logsock.New("tcp", addr, &logsock.Config{Batching: batching, CloseTimeout: 20 * time.Millisecond,
			MinBackoff: time.Hour, MaxBackoff: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if err := ls.Log("held"); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "the first attempt to fail", func() bool { return ls.Stats().Outage > 0 })
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		err = ls.Flush(ctx)
		cancel()
		oe = nil
		if !errors.Is(err, logsock.ErrUndelivered) || !errors.Is(err, context.DeadlineExceeded) ||
			!errors.As(err, &oe) || !errors.Is(err, logsocktest.ErrConnRefused) {
			t.Errorf("batching=%v: Flush: %v; want ErrUndelivered, DeadlineExceeded and the dial's *OpError", batching, err)
		}
		if st := ls.Stats(); st.Held != 1 {
			t.Errorf("batching=%v: after Flush gave up, Stats %+v: the frame must stay held", batching, st)
		}
		oe = nil
		if err := ls.Close(); !errors.Is(err, logsock.ErrUndelivered) || !errors.As(err, &oe) || oe.Op != "dial" {
			t.Errorf("batching=%v: Close: %v; want ErrUndelivered and the dial's *OpError", batching, err)
		}
	}
}

// TestStatsCountWritesOfFrames: Writes counts the writes that carry
// frames, not the handshake that Dial writes alone (issue 11, fault 5).
func TestStatsCountWritesOfFrames(t *testing.T) {
	s := logsocktest.NewSink()
	addr := logsocktest.Serve(t, "tcp", s.Server())
	ls := dial(t, "tcp", addr, nil)
	if st := ls.Stats(); st.Writes != 0 || st.Connects != 1 {
		t.Fatalf("after Dial, Stats %+v: want 1 connect, no write of frames", st)
	}
	for range 3 {
		if err := ls.Log("x"); err != nil {
			t.Fatal(err)
		}
	}
	if st := ls.Stats(); st.Writes != 3 || st.Frames != 3 || st.Bytes != 3 {
		t.Errorf("Stats %+v: want 3 writes of 3 frames, 3 bytes", st)
	}
	s.WaitRecords(t, 3)
}

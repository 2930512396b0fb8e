package logsock_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/logsocktest"
)

// TestCloseWithinTimeout: Close returns within CloseTimeout (50 ms) + 50 ms, in
// both modes, when the collector never reads (a write is blocked), when a
// dial hangs (a TCP listener whose backlog is full), and when the
// collector is down; what it could not deliver is counted and reported
// with ErrUndelivered. The other timeouts are the defaults, 5 s, so that
// only Close's own deadline can end the wait (issue 11, fault 3: batching
// mode's Close took 2.9 s with CloseTimeout 200 ms).
func TestCloseWithinTimeout(t *testing.T) {
	const closeTimeout = 50 * time.Millisecond
	// The goal's 50 ms, and on a busy machine the time that the process
	// waited for a CPU meanwhile (issue 17: 168 to 205 ms beside two CPU
	// hogs and other builds, with a timer only 2 to 13 ms late just
	// before): at its deadline Close waits for three goroutines in turn
	// (the abort, the writer, its own), and in batching mode it copies
	// what is queued out of the chunks to drop it. The race detector slows
	// every one of them.
	slack := 50 * time.Millisecond
	if raceEnabled {
		slack = 250 * time.Millisecond
	}
	cases := []struct {
		name    string
		network string
		mode    logsocktest.FakeMode
		down    bool
	}{
		{"never reads", "tcp", logsocktest.FakeStall, false},
		{"never reads", "unix", logsocktest.FakeStall, false},
		{"dial hangs", "tcp", logsocktest.FakeBacklog, false},
		{"down", "tcp", logsocktest.FakeDecode, true},
		{"down", "unix", logsocktest.FakeDecode, true},
	}
	for _, tc := range cases {
		for _, batching := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/%s/batching=%v", tc.name, tc.network, batching), func(t *testing.T) {
				col := logsocktest.NewFakeCollector(t, tc.network, tc.mode)
				if tc.down {
					col.Stop()
				}
				ls, err := logsock.New(tc.network, col.Addr, &logsock.Config{Batching: batching, CloseTimeout: closeTimeout})
				if err != nil {
					t.Fatal(err)
				}
				const logged = 3
				logging := make(chan error, 1)
				switch tc.mode {
				case logsocktest.FakeStall: // log until a write blocks on the full buffers
					go func() {
						chunk := make([]byte, 64<<10)
						for {
							if _, err := ls.Write(chunk); err != nil {
								logging <- err
								return
							}
						}
					}()
					waitWriteBlocked(t, ls, col, 1)
				case logsocktest.FakeBacklog: // the first frame makes the dial, which hangs
					go func() { logging <- ls.Log("into the backlog") }()
					waitForStack(t, "(*link).dial", "net.(*Dialer).DialContext")
				default:
					for range logged {
						if err := ls.Log("held"); err != nil {
							t.Fatal(err)
						}
					}
					close(logging)
				}

				waited := queueWait(t)
				start := time.Now()
				err = ls.Close()
				took := time.Since(start)
				waited = max(queueWait(t)-waited, 0)
				if took > closeTimeout+slack+waited {
					t.Errorf("Close took %v, CloseTimeout %v (the process's threads waited %v for a CPU meanwhile)", took, closeTimeout, waited)
				}
				if !errors.Is(err, logsock.ErrUndelivered) {
					t.Fatalf("Close: %v, want ErrUndelivered", err)
				}
				if err := <-logging; err != nil && !errors.Is(err, logsock.ErrClosed) {
					t.Errorf("the call in progress returned %v", err)
				}
				st := ls.Stats()
				switch {
				case st.Dropped == 0 || st.Held != 0:
					t.Errorf("Stats %+v: what Close could not deliver is not counted", st)
				case tc.down && st.Dropped != logged:
					t.Errorf("Stats %+v: want the %d frames held dropped", st, logged)
				case tc.down && !strings.Contains(err.Error(), fmt.Sprintf("%d frames", logged)):
					t.Errorf("Close: %q does not say how many frames it dropped", err)
				}
			})
		}
	}
}

package logsock_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/logsocktest"
)

// TestPeekDetectsClose tests the check itself: with it, a frame logged
// after the collector closed an idle connection goes to a new connection;
// without it, the frame goes into the dead one, as with log/syslog.
func TestPeekDetectsClose(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		for _, peek := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/peek=%v", network, peek), func(t *testing.T) {
				if peek {
					unixOnly(t, "no peek (Config.PeekInterval)")
				}
				col := logsocktest.NewFakeCollector(t, network, logsocktest.FakeDecode)
				interval := time.Nanosecond // check before every frame
				if !peek {
					interval = -1
				}
				ls := dial(t, network, col.Addr, &logsock.Config{PeekInterval: interval})
				if err := ls.Log("before"); err != nil {
					t.Fatal(err)
				}
				wantRecord(t, col, 0, 1, "before")
				col.CloseConn(1) // the collector goes away gracefully: FIN

				if err := ls.Log("after"); err != nil {
					t.Fatal(err)
				}
				st := ls.Stats()
				if !peek {
					// TCP accepts the frame into the dead connection; a Unix
					// socket fails the write at once (EPIPE), so the frame is
					// held and sent again on a new connection.
					switch {
					case network == "tcp" && st.Reconnects != 0:
						t.Fatalf("without the check, Stats %+v: want no reconnect yet", st)
					case network == "unix" && (st.Reconnects != 1 || st.Resent != 1):
						t.Fatalf("without the check, Stats %+v: want the failed frame re-sent on a new connection", st)
					}
					return
				}
				if st.Reconnects != 1 || st.Resent != 0 {
					t.Fatalf("Stats %+v: want the close found before writing: 1 reconnect, nothing re-sent", st)
				}
				wantRecord(t, col, 1, 2, "after") // the first frame on the new connection
			})
		}
	}
}

// TestResendAfterFailedWrite: with the check off, frames go into a dead
// TCP connection until a write fails; that frame is sent again, whole, as
// the first frame of the next connection, after a fresh handshake.
func TestResendAfterFailedWrite(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			col := logsocktest.NewFakeCollector(t, network, logsocktest.FakeDecode)
			ls := dial(t, network, col.Addr, &logsock.Config{PeekInterval: -1})
			if pid := col.WaitHandshake(t, 1); pid != int32(os.Getpid()) {
				t.Fatalf("handshake %d, want %d", pid, os.Getpid())
			}
			col.CloseConn(1)
			var failed string
			for i := 0; i < 1000 && failed == ""; i++ {
				msg := fmt.Sprint("frame ", i)
				if err := ls.Log(msg); err != nil {
					t.Fatal(err)
				}
				if ls.Stats().Reconnects == 1 {
					failed = msg
				}
			}
			if failed == "" {
				t.Fatal("no write failed on the dead connection")
			}
			wantRecord(t, col, 0, 2, failed) // the first frame on the new connection
			if st := ls.Stats(); st.Resent != 1 || st.Held != 0 {
				t.Errorf("Stats %+v: want 1 re-sent, none held", st)
			}
		})
	}
}

// TestOverflow: the buffer holds 3 frames of 10 bytes; the fourth is
// dropped by the policy, and counted. DropNewest and DropOldest decide at
// once: WriteTimeout, a minute, is Block's alone.
func TestOverflow(t *testing.T) {
	t.Parallel()
	name := map[logsock.Overflow]string{logsock.Block: "Block", logsock.DropNewest: "DropNewest", logsock.DropOldest: "DropOldest"}
	cfg := func(o logsock.Overflow) *logsock.Config {
		wait := time.Minute
		if o == logsock.Block {
			wait = 50 * time.Millisecond
		}
		return &logsock.Config{MaxFrame: 10, BufferBytes: 3 * (logsock.HeaderLen + 10), Overflow: o,
			WriteTimeout: wait, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond}
	}
	for _, tc := range []struct {
		policy  logsock.Overflow
		wantErr error
		want    []string // delivered once the collector is up
	}{
		{logsock.DropNewest, logsock.ErrBufferFull, []string{"frame....0", "frame....1", "frame....2"}},
		{logsock.DropOldest, nil, []string{"frame....1", "frame....2", "frame....3"}},
		{logsock.Block, logsock.ErrBufferFull, []string{"frame....0", "frame....1", "frame....2"}},
	} {
		t.Run(name[tc.policy], func(t *testing.T) {
			col := logsocktest.FakeDown(t, localNetwork, logsocktest.FakeDecode)
			ls, err := logsock.New(localNetwork, col.Addr, cfg(tc.policy))
			if err != nil {
				t.Fatal(err)
			}
			defer ls.Close()
			for i := range 3 {
				if err := ls.Log(fmt.Sprintf("frame....%d", i)); err != nil {
					t.Fatal(err)
				}
			}
			if err := logWithin(t, ls, "frame....3", 5*time.Second); !errors.Is(err, tc.wantErr) {
				t.Fatalf("fourth frame: %v, want %v", err, tc.wantErr)
			}
			if st := ls.Stats(); st.Dropped != 1 || st.Held != 3 || st.HeldBytes != 3*(logsock.HeaderLen+10) {
				t.Fatalf("Stats %+v: want 1 dropped, 3 held", st)
			}
			col.Start(t)
			flush(t, ls)
			if got := msgs(col.WaitRecords(t, 3)); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("delivered %q, want %q", got, tc.want)
			}
		})
	}
}

// TestBlockWaitsForCollector: under Block, a call that finds the buffer
// full waits, with the mutex released, and goes on once the collector is
// back and the held frames are out.
func TestBlockWaitsForCollector(t *testing.T) {
	col := logsocktest.FakeDown(t, localNetwork, logsocktest.FakeDecode)
	ls, err := logsock.New(localNetwork, col.Addr, &logsock.Config{MaxFrame: 10, BufferBytes: 2 * (logsock.HeaderLen + 10),
		WriteTimeout: time.Minute, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	ls.Log("one.......") // 10 bytes each: the buffer holds two
	ls.Log("two.......")
	blocked := make(chan error, 1)
	go func() { blocked <- ls.Log("three.....") }()
	waitForStack(t, "(*direct).waitForRoom", "(*link).wait")
	// The waiter does not hold the mutex: Flush can run meanwhile.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := ls.Flush(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flush while a call waits: %v", err)
	}
	col.Start(t)
	if err := <-blocked; err != nil {
		t.Fatalf("blocked Log: %v", err)
	}
	flush(t, ls)
	if got := msgs(col.WaitRecords(t, 3)); fmt.Sprint(got) != "[one....... two....... three.....]" {
		t.Errorf("delivered %q", got)
	}
}

// TestCloseDeliversHeld: Close sends what is held when it can, and counts
// and reports what it cannot, within CloseTimeout.
func TestCloseDeliversHeld(t *testing.T) {
	t.Parallel()
	t.Run("collector up", func(t *testing.T) {
		col := logsocktest.FakeDown(t, localNetwork, logsocktest.FakeDecode)
		ls, err := logsock.New(localNetwork, col.Addr, &logsock.Config{MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ls.Log("a")
		ls.Log("b")
		col.Start(t)
		if err := ls.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if got := msgs(col.WaitRecords(t, 2)); fmt.Sprint(got) != "[a b]" {
			t.Errorf("delivered %q", got)
		}
		if st := ls.Stats(); st.Dropped != 0 || st.Frames != 2 {
			t.Errorf("Stats %+v", st)
		}
	})
	t.Run("collector down", func(t *testing.T) {
		ls, err := logsock.New(localNetwork, logsocktest.FakeDown(t, localNetwork, logsocktest.FakeDecode).Addr, &logsock.Config{CloseTimeout: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ls.Log("a")
		ls.Log("b")
		start := time.Now()
		if err := ls.Close(); !errors.Is(err, logsock.ErrUndelivered) {
			t.Fatalf("Close: %v, want ErrUndelivered", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Close took %v with CloseTimeout 50ms", d)
		}
		if st := ls.Stats(); st.Dropped != 2 || st.Held != 0 {
			t.Errorf("Stats %+v: want the 2 held frames dropped", st)
		}
		if err := ls.Flush(context.Background()); !errors.Is(err, logsock.ErrClosed) {
			t.Errorf("Flush after Close: %v", err)
		}
	})
}

// TestDecoderSeesRestart: a collector that drops the connection
// abortively (a RST, as from a crash) gets the rest of the stream on a new
// connection, which opens with its own handshake (wantRecord checks its
// pid); when the client closes, the reader of that new connection sees a
// clean end.
func TestDecoderSeesRestart(t *testing.T) {
	col := logsocktest.NewFakeCollector(t, "tcp", logsocktest.FakeDecode)
	ls := dial(t, "tcp", col.Addr, &logsock.Config{PeekInterval: time.Nanosecond})
	ls.Log("one")
	wantRecord(t, col, 0, 1, "one")
	col.ResetConn(1) // an abortive close: RST, not FIN
	ls.Log("two")
	wantRecord(t, col, 1, 2, "two") // after a reset
	ls.Close()
	if end := col.WaitConnEnd(t, 2); end.Err != nil {
		t.Fatalf("connection 2 after Close: %v, want a clean end (io.EOF)", end.Err)
	}
}

// TestFrameLargerThanBuffer: a frame that could never fit in the buffer is
// dropped, and counted, when it has to be held.
func TestFrameLargerThanBuffer(t *testing.T) {
	for _, tc := range []struct {
		cfg         logsock.Config
		small, huge int
	}{
		{logsock.Config{BufferBytes: 100}, 50, 200},
		{logsock.Config{BufferBytes: 100, Batching: true}, 50, 200},
		{logsock.Config{BufferBytes: 64 << 10, Batching: true}, 50, 100 << 10}, // with chunks
	} {
		for _, policy := range []logsock.Overflow{logsock.Block, logsock.DropNewest, logsock.DropOldest} {
			cfg := tc.cfg
			cfg.CloseTimeout, cfg.WriteTimeout, cfg.Overflow = time.Millisecond, time.Minute, policy
			ls, err := logsock.New(localNetwork, logsocktest.FakeDown(t, localNetwork, logsocktest.FakeDecode).Addr, &cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := ls.Log(strings.Repeat("x", tc.small)); err != nil {
				t.Fatal(err)
			}
			// At once: no wait would make room, not even WriteTimeout's.
			if err := ls.Log(strings.Repeat("x", tc.huge)); !errors.Is(err, logsock.ErrBufferFull) {
				t.Errorf("%+v: %d bytes: %v, want ErrBufferFull", cfg, tc.huge, err)
			}
			if st := ls.Stats(); st.Dropped != 1 || st.Held != 1 {
				t.Errorf("%+v: Stats %+v: want 1 dropped, the small frame still held", cfg, st)
			}
			ls.Close()
		}
	}
}

// TestHealthyConnectionResetsBackoff: a connection that stayed up a second
// (healthyAfter) proves the collector healthy: when it is lost, the backoff
// is reset and the next frame goes out on a new connection at once, though
// the connection before it was lost at once. MinBackoff and MaxBackoff are
// a minute, so that any wait for the backoff shows; in direct and in
// batching mode.
func TestHealthyConnectionResetsBackoff(t *testing.T) {
	t.Parallel()
	unixOnly(t, "no peek (Config.PeekInterval): the loss is found by the peek")
	// Longer than healthyAfter (a second: Config's MinBackoff says so).
	const healthy = 1100 * time.Millisecond
	// Far below the backoff, drawn from [30 s, 60 s].
	const atOnce = 10 * time.Second
	for _, batching := range []bool{false, true} {
		t.Run(fmt.Sprintf("batching=%v", batching), func(t *testing.T) {
			t.Parallel()
			col := logsocktest.NewFakeCollector(t, localNetwork, logsocktest.FakeDecode)
			ls := dial(t, localNetwork, col.Addr, inMode(batching, &logsock.Config{
				PeekInterval: time.Nanosecond, MinBackoff: time.Minute, MaxBackoff: time.Minute,
				CloseTimeout: 50 * time.Millisecond}))
			// logOn logs msg, checks that it is written within atOnce,
			// and that it is record i, on connection conn.
			logOn := func(i int, conn uint64, msg string) time.Time {
				t.Helper()
				if err := ls.Log(msg); err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), atOnce)
				defer cancel()
				if err := ls.Flush(ctx); err != nil {
					t.Fatalf("%q not written within %v: %v", msg, atOnce, err)
				}
				wantRecord(t, col, i, conn, msg)
				return time.Now()
			}

			// Connection 1 is lost at once: the first loss since New is
			// retried at once, and counts as a failure.
			col.WaitHandshake(t, 1)
			col.CloseConn(1)
			upBy := logOn(0, 2, "on 2") // connection 2 was up by then

			// Connection 2 stays up past healthyAfter: its loss resets the
			// backoff, and is retried at once. Time passing is what is
			// tested here: no signal could stand for it.
			time.Sleep(time.Until(upBy.Add(healthy)))
			col.CloseConn(2)
			logOn(1, 3, "on 3")

			// Connection 3 is lost at once: the second loss since the
			// reset waits for the backoff. The frame is held.
			col.CloseConn(3)
			if err := ls.Log("held"); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			if err := ls.Flush(ctx); !errors.Is(err, logsock.ErrUndelivered) {
				t.Fatalf("Flush after a loss at once: %v, want ErrUndelivered (the backoff)", err)
			}
			if n := len(col.Connections()); n != 3 {
				t.Errorf("%d connections: a lost connection that lived under a second reset the backoff", n)
			}
			if st := ls.Stats(); st.Held != 1 || st.Frames != 2 || st.Reconnects != 2 {
				t.Errorf("Stats %+v: want 2 frames written, 1 held, 2 reconnects", st)
			}
		})
	}
}

// TestHangingDialHoldsNoOne: a dial that hangs (TCP, a listener whose
// backlog is full; DialTimeout 10 s) holds up no call for longer than its
// WriteTimeout. In direct mode the call that starts the dial waits for it
// until its WriteTimeout, then returns, its frame held, while the dial goes
// on (issue 17: the first Log took DialTimeout); another call holds its
// frame and returns. In batching mode the writer dials, and Log returns at
// once. Meanwhile Flush gives up when its context ends, and Close when
// CloseTimeout does, each long before the dial would.
func TestHangingDialHoldsNoOne(t *testing.T) {
	t.Parallel()
	const closeTimeout = 100 * time.Millisecond
	// Generous for a busy machine, and far below DialTimeout: a call held
	// up by the dial would take 10 s.
	const slack = 2 * time.Second
	for _, batching := range []bool{false, true} {
		t.Run(fmt.Sprintf("batching=%v", batching), func(t *testing.T) {
			t.Parallel()
			ownStacks(t) // the dial that waitForStack waits for is this test's
			col := logsocktest.NewFakeCollector(t, "tcp", logsocktest.FakeBacklog)
			ls, err := logsock.New("tcp", col.Addr, inMode(batching, &logsock.Config{
				DialTimeout: 10 * time.Second, WriteTimeout: 300 * time.Millisecond, CloseTimeout: closeTimeout}))
			if err != nil {
				t.Fatal(err)
			}
			defer ls.Close()
			first := make(chan error, 1)
			start := time.Now()
			go func() { first <- ls.Log("dials") }() // direct mode: this call starts the dial
			waitForStack(t, "(*link).dial", "net.(*Dialer).DialContext")
			select {
			case err := <-first:
				if err != nil {
					t.Fatalf("Log: %v", err)
				}
			case <-time.After(slack):
				t.Fatalf("Log has not returned after %v while the dial hangs", slack)
			}
			t.Logf("the first Log returned after %v", time.Since(start))
			waitForStack(t, "(*link).dial", "net.(*Dialer).DialContext") // and the dial goes on
			if err := logWithin(t, ls, "meanwhile", slack); err != nil {
				t.Fatalf("Log while a dial hangs: %v, want nil (held)", err)
			}

			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			start = time.Now()
			err = ls.Flush(ctx)
			if took := time.Since(start); took > 200*time.Millisecond+slack {
				t.Errorf("Flush with a 200 ms context took %v", took)
			}
			if !errors.Is(err, logsock.ErrUndelivered) || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Flush while a dial hangs: %v, want ErrUndelivered and DeadlineExceeded", err)
			}
			if st := ls.Stats(); st.Held != 2 || st.Connects != 0 {
				t.Errorf("Stats %+v: want 2 frames held, no connection", st)
			}

			start = time.Now()
			err = ls.Close()
			if took := time.Since(start); took > closeTimeout+slack {
				t.Errorf("Close took %v, CloseTimeout %v", took, closeTimeout)
			}
			if !errors.Is(err, logsock.ErrUndelivered) {
				t.Errorf("Close: %v, want ErrUndelivered", err)
			}
			if st := ls.Stats(); st.Dropped != 2 || st.Held != 0 {
				t.Errorf("Stats %+v: want the 2 frames dropped by Close", st)
			}
		})
	}
}

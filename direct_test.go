package logsock_test

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/logsocktest"
)

// TestDirectOneDeadlineACall: in direct mode, a call that first sends
// the frames held during an outage, then its own, waits for room in the
// send buffer until one deadline, WriteTimeout from its start: not a
// fresh WriteTimeout for its own frame once the held ones are out. The
// collector comes up, reads the held frames only after half of
// WriteTimeout, then stops reading; the call's own frame, larger than the
// socket buffers, cannot go out.
func TestDirectOneDeadlineACall(t *testing.T) {
	t.Parallel()
	const (
		wait  = time.Second
		frame = 64 << 10
	)
	// A Unix socket's buffers take the sender's wmem_default unread, 208
	// KiB: the frames are five times that, and no larger. The call's work
	// on its own frame after the deadline (it holds it again) is CPU time,
	// which the race detector and a busy machine stretch (issue 17: 32 MiB
	// over TCP, 1.4 to 7 s for a WriteTimeout of 1 s). Over TCP (Windows)
	// they must be larger than what the kernel's buffers grow to.
	heldBytes, ownBytes := 1<<20, 1<<20
	if localNetwork == "tcp" {
		heldBytes, ownBytes = 16<<20, 32<<20
	}
	// A try whose scenario did not happen (the machine kept the client or
	// the collector from running past the deadline) is made again; it
	// proves nothing either way.
	attempt := func(t *testing.T) (inconclusive string) {
		// A backoff of a nanosecond: the call's first act is to connect. (A
		// millisecond, and on a quiet machine the call came before the attempt
		// was due, wrote nothing and returned at once, issue 17.)
		col := logsocktest.FakeDown(t, localNetwork, logsocktest.FakeDecode) // only for its address
		ls, err := logsock.New(localNetwork, col.Addr, &logsock.Config{WriteTimeout: wait, MaxFrame: ownBytes,
			BufferBytes: 4 * ownBytes, MinBackoff: time.Nanosecond, MaxBackoff: time.Nanosecond, CloseTimeout: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer ls.Close()
		msg := strings.Repeat("h", frame-logsock.HeaderLen)
		for range heldBytes / frame {
			if err := ls.Log(msg); err != nil {
				t.Fatal(err)
			}
		}
		if st := ls.Stats(); st.Held != heldBytes/frame {
			t.Fatalf("Stats %+v: want %d frames held while the collector is down", st, heldBytes/frame)
		}

		l, err := net.Listen(localNetwork, col.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		type reading struct {
			at     time.Time // when the collector began to read
			frames uint64    // the frames that the client had written by then
		}
		began := make(chan reading, 1)
		read := make(chan error, 1)
		go func() {
			c, err := l.Accept()
			if err != nil {
				began <- reading{}
				read <- err
				return
			}
			defer c.Close()
			time.Sleep(wait / 2) // a slow collector: the scenario, not a wait for a signal
			began <- reading{time.Now(), ls.Stats().Frames}
			_, err = io.CopyN(io.Discard, c, int64(4+heldBytes))
			read <- err
			<-t.Context().Done() // and then it reads no more
		}()

		own := strings.Repeat("o", ownBytes) // made before the timed window
		waited := queueWait(t)
		start := time.Now()
		err = ls.Log(own)
		took := time.Since(start)
		waited = max(queueWait(t)-waited, 0)
		if st := ls.Stats(); st.Connects == 0 {
			t.Fatalf("Log: %v after %v without connecting; Stats %+v", err, took, st)
		}
		r := <-began
		if err := <-read; err != nil {
			// The call's deadline came before the collector had read what was
			// held: the machine kept one of them from running.
			return fmt.Sprintf("the collector's read of the held frames: %v (Log took %v)", err, took)
		}
		st := ls.Stats()
		t.Logf("Log: %v after %v, the collector reading from %v; Stats %+v", err, took, r.at.Sub(start), st)
		// The held frames went out while the collector read, before the
		// deadline, or the test proves nothing.
		if r.frames != 0 || st.Frames < uint64(heldBytes/frame) {
			return fmt.Sprintf("Stats %+v, %d frames written when the collector began to read: want the %d held written after, within WriteTimeout",
				st, r.frames, heldBytes/frame)
		}
		// A fresh WriteTimeout for the call's own frame, once the held ones
		// were out, would end no sooner than WriteTimeout after the collector
		// began to read. The one deadline ends half a WriteTimeout before: that
		// is the slack for a busy machine, with the time that the process's
		// threads waited for a CPU meanwhile (stress run: 0.75 s past the
		// deadline beside two CPU hogs).
		if took >= r.at.Sub(start)+wait+waited {
			t.Errorf("Log took %v with WriteTimeout %v, the collector reading from %v (the process's threads waited %v for a CPU): its own frame waited a WriteTimeout of its own",
				took, wait, r.at.Sub(start), waited)
		}
		return ""
	}
	for try := 1; ; try++ {
		why := attempt(t)
		if why == "" {
			return
		}
		if try == 5 {
			t.Fatalf("5 tries, none conclusive; the last: %s", why)
		}
		t.Logf("try %d: %s", try, why)
	}
}

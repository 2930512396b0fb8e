package logsock_test

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/testenv"
)

// TestDirectOneDeadlineACall: in direct mode, a call that first sends
// the frames held during an outage, then its own, waits for room in the
// send buffer until one deadline, WriteTimeout from its start: not a
// fresh WriteTimeout for its own frame once the held ones are out. The
// collector comes up, reads the held frames only after 90% of
// WriteTimeout, then stops reading; the call's own frame, larger than the
// socket buffers of loopback, cannot go out.
func TestDirectOneDeadlineACall(t *testing.T) {
	const (
		wait      = time.Second
		heldBytes = 16 << 20 // more than loopback's socket buffers take unread
		ownBytes  = 32 << 20
		frame     = 64 << 10
	)
	l, err := testenv.ListenTCP()
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // down at start
	ls, err := logsock.New("tcp", addr, &logsock.Config{WriteTimeout: wait, MaxFrame: ownBytes,
		BufferBytes: 4 * ownBytes, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond, CloseTimeout: time.Millisecond})
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

	l, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	read := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			read <- err
			return
		}
		defer c.Close()
		time.Sleep(wait * 9 / 10) // a slow collector: the scenario, not a wait for a signal
		_, err = io.CopyN(io.Discard, c, 4+heldBytes)
		read <- err
		<-t.Context().Done() // and then it reads no more
	}()

	start := time.Now()
	err = ls.Log(strings.Repeat("o", ownBytes))
	took := time.Since(start)
	if err := <-read; err != nil {
		t.Fatalf("the collector's read of the held frames: %v", err)
	}
	t.Logf("Log: %v after %v; Stats %+v", err, took, ls.Stats())
	// One deadline: about WriteTimeout. Two: 1.9 WriteTimeout.
	if took > wait*3/2 {
		t.Errorf("Log took %v with WriteTimeout %v: its own frame waited a WriteTimeout of its own", took, wait)
	}
}

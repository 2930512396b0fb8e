package logsock_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/logsocktest"
)

// TestLineWriter: a program's output, which a LogSocket would send a
// frame a Write ("line 5\npartial" in one), arrives a frame a line,
// without the newlines; a line longer than MaxFrame is split, in order; a
// partial line goes out on Flush.
func TestLineWriter(t *testing.T) {
	unixOnly(t, "the test's writer is sh")
	for _, batching := range []bool{false, true} {
		t.Run(fmt.Sprintf("batching=%v", batching), func(t *testing.T) {
			col := logsocktest.NewFakeCollector(t, localNetwork, logsocktest.FakeDecode)
			ls := dial(t, localNetwork, col.Addr, &logsock.Config{Batching: batching, MaxFrame: 10})
			lw := logsock.NewLineWriter(ls)
			cmd := exec.Command("sh", "-c", `printf 'line 1\nline 2\n\nline 4\n'; printf 'abcdefghijklmnopqrstuvwxyz\nline 6\npart' >&2`)
			cmd.Stdout, cmd.Stderr = lw, lw
			if err := cmd.Run(); err != nil {
				t.Fatal(err)
			}
			if _, err := lw.Write([]byte("ial")); err != nil { // the partial line goes on
				t.Fatal(err)
			}
			if err := lw.Flush(); err != nil {
				t.Fatal(err)
			}
			flush(t, ls)
			want := []string{"line 1", "line 2", "", "line 4", "abcdefghij", "klmnopqrst", "uvwxyz", "line 6", "partial"}
			if got := msgs(col.WaitRecords(t, len(want))); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("frames %q, want %q", got, want)
			}
		})
	}
}

// TestLineWriterBounded: a line that never ends is sent in frames of
// MaxFrame bytes as it comes, so that a LineWriter keeps at most a frame.
func TestLineWriterBounded(t *testing.T) {
	col := logsocktest.NewFakeCollector(t, localNetwork, logsocktest.FakeDecode)
	ls := dial(t, localNetwork, col.Addr, &logsock.Config{MaxFrame: 10})
	lw := logsock.NewLineWriter(ls)
	for range 25 {
		if _, err := lw.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if got := msgs(col.WaitRecords(t, 2)); fmt.Sprint(got) != "[xxxxxxxxxx xxxxxxxxxx]" {
		t.Errorf("frames %q before the end of the line", got)
	}
	if err := lw.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := msgs(col.WaitRecords(t, 3)); got[2] != "xxxxx" {
		t.Errorf("frames %q after Flush", got)
	}
	// A part kept, then a write of more than a frame: the part topped up
	// to a frame, then frames of the write, in order; the rest kept.
	for _, p := range []string{"ab", "cdefghijklmnopqrstuvwxyz01234"} {
		if _, err := lw.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	if got := msgs(col.WaitRecords(t, 6)); fmt.Sprint(got[3:]) != "[abcdefghij klmnopqrst uvwxyz0123]" {
		t.Errorf("frames %q", got[3:])
	}
	if err := lw.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := msgs(col.WaitRecords(t, 7)); got[6] != "4" {
		t.Errorf("frames %q after Flush", got[3:])
	}
	// A part of exactly a frame, then its newline: one frame, not a frame
	// and an empty one; the frames do not depend on where writes split.
	for _, p := range []string{"0123456789", "\nnext\n"} {
		if _, err := lw.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	if got := msgs(col.WaitRecords(t, 9)); fmt.Sprint(got[7:]) != "[0123456789 next]" {
		t.Errorf("frames %q", got[7:])
	}
}

// TestLineWriterConcurrent: lines written whole by concurrent calls arrive
// whole.
func TestLineWriterConcurrent(t *testing.T) {
	col := logsocktest.NewFakeCollector(t, localNetwork, logsocktest.FakeDecode)
	ls := dial(t, localNetwork, col.Addr, &logsock.Config{Batching: true})
	lw := logsock.NewLineWriter(ls)
	const writers, lines = 4, 500
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range lines {
				fmt.Fprintf(lw, "writer %d line %d\nwriter %d line %d+\n", g, i, g, i)
			}
		})
	}
	wg.Wait()
	flush(t, ls)
	recs := col.WaitRecords(t, 2*writers*lines)
	for _, r := range recs {
		var g, i int
		if n, err := fmt.Sscanf(strings.TrimSuffix(string(r.Msg), "+"), "writer %d line %d", &g, &i); n != 2 || err != nil {
			t.Fatalf("frame %q: not a whole line", r.Msg)
		}
	}
}

// TestLineWriterKeepsGoing: a line that the LogSocket drops does not end
// the writer, which would cut a program's output short; only Close does.
func TestLineWriterKeepsGoing(t *testing.T) {
	ls, err := logsock.New(localNetwork, logsocktest.FakeDown(t, localNetwork, logsocktest.FakeDecode).Addr, &logsock.Config{BufferBytes: 64, Overflow: logsock.DropNewest,
		CloseTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	lw := logsock.NewLineWriter(ls)
	text := strings.Repeat("a line of 20 bytes.\n", 10)
	if n, err := lw.Write([]byte(text)); n != len(text) || err != nil {
		t.Fatalf("Write: %d, %v; want %d, nil", n, err, len(text))
	}
	if st := ls.Stats(); st.Dropped == 0 || st.Held == 0 {
		t.Errorf("Stats %+v: want lines held and the rest dropped, counted", st)
	}
	ls.Close()
	if _, err := lw.Write([]byte("after\n")); !errors.Is(err, logsock.ErrClosed) {
		t.Errorf("Write after Close: %v, want ErrClosed", err)
	}
}

// TestSync: in batching mode, Sync returns once what was logged is written
// to the connection (zap's Logger.Sync: the collector had 0 of 2 records
// after it before Sync waited); with the collector down, it gives up
// after WriteTimeout, and the frames stay held.
func TestSync(t *testing.T) {
	col := logsocktest.NewFakeCollector(t, localNetwork, logsocktest.FakeDecode)
	ls := dial(t, localNetwork, col.Addr, &logsock.Config{Batching: true, FlushDelay: time.Hour})
	ls.Log("one")
	ls.Log("two")
	if err := ls.Sync(); err != nil {
		t.Fatal(err)
	}
	if st := ls.Stats(); st.Frames != 2 {
		t.Errorf("after Sync, Stats %+v: want both frames written", st)
	}
	col.WaitRecords(t, 2)

	down, err := logsock.New(localNetwork, logsocktest.FakeDown(t, localNetwork, logsocktest.FakeDecode).Addr, &logsock.Config{Batching: true, WriteTimeout: 20 * time.Millisecond,
		CloseTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	down.Log("held")
	start := time.Now()
	if err := down.Sync(); !errors.Is(err, logsock.ErrUndelivered) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Sync with the collector down: %v, want ErrUndelivered after WriteTimeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Sync took %v with WriteTimeout 20ms", d)
	}
	if st := down.Stats(); st.Held != 1 {
		t.Errorf("Stats %+v: the frame must stay held", st)
	}
}

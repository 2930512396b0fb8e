package logsock_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/logsocktest"
)

// TestRefusedFrameDropped: a frame that the collector refuses (above its
// MaxFrame: it ends the connection at the header), and whose write it so
// cuts, is sent again on a few connections, then dropped, counted and
// reported by the next Flush; the frames behind it, and those logged
// later, are delivered; Log then refuses frames of that size at once.
// Before, the frame went back to the head of the queue for ever, and every
// later Log returned nil while nothing arrived (issue 17: 2,903 frames
// held after 30 s, Dropped 0). The frames are larger than the socket
// buffers take (batching mode asks for 4 MiB on a Unix socket), so that
// the collector's close cuts their write: one that the kernel took whole
// is lost with the connection, as when a collector dies, and the client
// cannot know it.
func TestRefusedFrameDropped(t *testing.T) {
	t.Parallel()
	cases := []struct {
		network   string
		batching  bool
		clientMax int // the client's MaxFrame
		big       int // the frame the collector refuses (its MaxFrame is the default, 1 MiB)
	}{
		{"unix", false, 2 << 20, 3 << 19}, // issue 17's case
		{"unix", true, 16 << 20, 12 << 20},
		{"tcp", false, 32 << 20, 16 << 20},
		{"tcp", true, 32 << 20, 16 << 20},
	}
	for _, tc := range cases {
		batching := tc.batching
		{
			t.Run(fmt.Sprintf("%s/batching=%v", tc.network, batching), func(t *testing.T) {
				unixOnly(t, "only Unix tells a reset from a timeout here") // a Windows client counts no cut
				log := newConnLog()
				addr := logsocktest.Serve(t, tc.network, log.Server())
				ls, err := logsock.New(tc.network, addr, &logsock.Config{Batching: batching, MaxFrame: tc.clientMax,
					BufferBytes: 2 * tc.big, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond})
				if err != nil {
					t.Fatal(err)
				}
				defer ls.Close()
				if err := ls.Log("before"); err != nil {
					t.Fatal(err)
				}
				if err := ls.Log(strings.Repeat("B", tc.big)); err != nil {
					t.Fatalf("Log of the big frame: %v (it is within the client's MaxFrame)", err)
				}
				const after = 20
				for i := range after {
					if err := ls.Log(fmt.Sprint("after ", i)); err != nil {
						t.Fatal(err)
					}
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				err = ls.Flush(ctx)
				if !errors.Is(err, logsock.ErrFrameTooLarge) || !strings.Contains(err.Error(), fmt.Sprint(tc.big)) {
					t.Errorf("Flush: %v, want ErrFrameTooLarge naming the %d-byte frame", err, tc.big)
				}
				if err := ls.Flush(ctx); err != nil {
					t.Errorf("second Flush: %v, want nil: the drop is reported once", err)
				}
				st := ls.Stats()
				if st.Dropped != 1 {
					t.Errorf("Stats %+v: want the refused frame dropped and counted", st)
				}
				var got []string
				for _, r := range log.WaitRecords(t, 1+after) {
					got = append(got, string(r.Msg))
				}
				want := []string{"before"}
				for i := range after {
					want = append(want, fmt.Sprint("after ", i))
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("records %q, want %q", got, want)
				}
				if n := len(log.endsWith(logsock.ReasonFrameTooLarge)); n == 0 || n > 3 {
					t.Errorf("%d connections ended frame_too_large: want 1 to 3", n)
				}

				// The client now knows the collector's limit is below.
				start := time.Now()
				if err := ls.Log(strings.Repeat("B", tc.big)); !errors.Is(err, logsock.ErrFrameTooLarge) {
					t.Errorf("Log of another frame that size: %v, want ErrFrameTooLarge at once", err)
				}
				if err := ls.Log("still going"); err != nil {
					t.Fatal(err)
				}
				log.waitMsg(t, "still going")
				t.Logf("refused in %v; Stats %+v", time.Since(start), ls.Stats())
			})
		}
	}
}

package logsock_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/logsocktest"
)

// TestPoliciesLetTheLinkReconnect: under DropNewest and DropOldest, in
// both modes, with a collector down for a second (the buffer overflows)
// and then up, the link is back within MaxBackoff of the collector's
// return, and every frame logged once the held frames are out is
// accepted and delivered (issue 11, fault 1: direct mode with DropNewest
// never reconnected once its buffer was full).
func TestPoliciesLetTheLinkReconnect(t *testing.T) {
	t.Parallel()
	// The four cases at once: they wait more than they work.
	var wg sync.WaitGroup
	for policy, name := range map[logsock.Overflow]string{logsock.DropNewest: "DropNewest", logsock.DropOldest: "DropOldest"} {
		for _, batching := range []bool{false, true} {
			wg.Go(func() { checkPolicyReconnects(t, fmt.Sprintf("%s/batching=%v", name, batching), policy, batching) })
		}
	}
	wg.Wait()
}

// checkPolicyReconnects is one case of TestPoliciesLetTheLinkReconnect,
// run on a goroutine of its own: it reports with t.Errorf, and returns.
func checkPolicyReconnects(t *testing.T, name string, policy logsock.Overflow, batching bool) {
	const (
		outage     = time.Second
		after      = 300 * time.Millisecond // logging once the held frames are out
		maxBackoff = 200 * time.Millisecond
		// slack is the scheduler's share in "within MaxBackoff", on 2
		// shared cores.
		slack = 100 * time.Millisecond
		// stuck bounds the waits for what must come (an overflow, the
		// link, the held frames out): generous, it only ends a failure.
		stuck = 20 * time.Second
	)
	col := logsocktest.FakeDown(t, localNetwork, logsocktest.FakeDecode)
	ls, err := logsock.New(localNetwork, col.Addr, &logsock.Config{Batching: batching, Overflow: policy,
		BufferBytes: 16 << 10, MinBackoff: 10 * time.Millisecond, MaxBackoff: maxBackoff})
	if err != nil {
		t.Errorf("%s: %v", name, err)
		return
	}
	defer ls.Close()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	seq := 0
	logOne := func() error {
		seq++
		return ls.Log(strconv.Itoa(seq) + " " + string(make([]byte, 90)))
	}
	// A second, and until the buffer has overflowed: beside CPU hogs the
	// ticks can come 45 ms apart, and a second of them not fill 16 KiB
	// (issue 17: 22 frames held, none dropped).
	for end := time.Now().Add(outage); time.Now().Before(end) || ls.Stats().Dropped == 0; <-tick.C {
		if time.Since(end) > stuck {
			t.Errorf("%s: the buffer did not overflow in %v of outage: Stats %+v", name, outage+stuck, ls.Stats())
			return
		}
		logOne()
	}
	if st := ls.Stats(); st.Connects != 0 {
		t.Errorf("%s: after the outage, Stats %+v: want frames dropped, no connection", name, st)
		return
	}

	upAt := time.Now()
	col.Start(t)
	var (
		backAt time.Time     // when the link was seen back
		held   uint64        // the frames held then
		first  int           // the first frame that must be delivered: logged once they were out
		gap    time.Duration // the longest time between two calls: how late backAt can be seen
		last   = time.Now()
	)
	for ; first == 0 || time.Since(backAt) < after; <-tick.C {
		gap, last = max(gap, time.Since(last)), time.Now()
		err := logOne()
		st := ls.Stats()
		switch {
		case backAt.IsZero():
			if st.Connects > 0 {
				backAt, held = time.Now(), uint64(st.Held)
			} else if time.Since(upAt) > stuck {
				t.Errorf("%s: no connection %v after the collector came back: Stats %+v", name, time.Since(upAt), st)
				return
			}
		case first == 0:
			// A frame logged while the held ones go out may find the
			// buffer full; none logged after.
			if st.Frames >= held {
				first = seq + 1
			} else if time.Since(backAt) > stuck {
				t.Errorf("%s: the %d frames held are not out %v after the link was back: Stats %+v", name, held, stuck, st)
				return
			}
		case err != nil:
			t.Errorf("%s: frame %d, logged %v after the link was back: %v", name, seq, time.Since(backAt), err)
		}
	}
	// The attempt falls due within MaxBackoff of the collector's return;
	// the writer's goroutine (or the call's) runs it as late as this
	// goroutine's ticks came, and this goroutine saw it as late again.
	if d := backAt.Sub(upAt); d > maxBackoff+slack+2*gap {
		t.Errorf("%s: the link was back %v after the collector, MaxBackoff %v (ticks up to %v apart)", name, d, maxBackoff, gap)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ls.Flush(ctx); err != nil {
		t.Errorf("%s: Flush: %v", name, err)
		return
	}
	// One connection, in order: once the last frame is in, all are.
	seqOf := func(r logsock.Record) int {
		n, _ := strconv.Atoi(string(r.Msg[:len(r.Msg)-91]))
		return n
	}
	var recs []logsock.Record
	col.Wait(t, fmt.Sprintf("%s: frame %d", name, seq), func(rs []logsock.Record, _ []error) bool {
		recs = rs
		return len(rs) > 0 && seqOf(rs[len(rs)-1]) == seq
	})
	got := make(map[int]bool, len(recs))
	for _, r := range recs {
		got[seqOf(r)] = true
	}
	for n := first; n <= seq; n++ {
		if !got[n] {
			t.Errorf("%s: frame %d of %d..%d, logged after the link was back, was not delivered (Stats %+v)",
				name, n, first, seq, ls.Stats())
			break
		}
	}
}

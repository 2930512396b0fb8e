package logsock_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/logsock/logsock"
)

// TestPoliciesLetTheLinkReconnect: under DropNewest and DropOldest, in
// both modes, with a collector down for a second (the buffer overflows)
// and then up, the link is back within MaxBackoff of the collector's
// return, and every frame logged from then on is accepted and delivered
// (issue 11, fault 1: direct mode with DropNewest never reconnected once
// its buffer was full).
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
		after      = 300 * time.Millisecond // logging once the link is back
		maxBackoff = 200 * time.Millisecond
		// settle is how long after the link is back the held frames may
		// still be in flight: a frame logged meanwhile may find the buffer
		// full. 16 KiB take microseconds on a Unix socket.
		settle = 50 * time.Millisecond
		// slack is the scheduler's share in "within MaxBackoff", on 2
		// shared cores.
		slack = 100 * time.Millisecond
	)
	col := fakeDown(t, localNetwork, fakeDecode)
	ls, err := logsock.New(localNetwork, col.addr, &logsock.Config{Batching: batching, Overflow: policy,
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
	for end := time.Now().Add(outage); time.Now().Before(end); <-tick.C {
		logOne()
	}
	if st := ls.Stats(); st.Dropped == 0 || st.Connects != 0 {
		t.Errorf("%s: after the outage, Stats %+v: want frames dropped, no connection", name, st)
		return
	}

	upAt := time.Now()
	col.start(t)
	var backAt time.Time // when the link was seen back
	first := 0           // the first frame that must be delivered
	for ; backAt.IsZero() || time.Since(backAt) < after; <-tick.C {
		err := logOne()
		switch {
		case backAt.IsZero():
			if ls.Stats().Connects > 0 {
				backAt = time.Now()
			} else if time.Since(upAt) > maxBackoff+time.Second {
				t.Errorf("%s: no connection %v after the collector came back: Stats %+v", name, time.Since(upAt), ls.Stats())
				return
			}
		case first == 0 && time.Since(backAt) >= settle:
			first = seq
			fallthrough
		case first != 0 && err != nil:
			if err != nil {
				t.Errorf("%s: frame %d, logged %v after the link was back: %v", name, seq, time.Since(backAt), err)
			}
		}
	}
	if d := backAt.Sub(upAt); d > maxBackoff+slack {
		t.Errorf("%s: the link was back %v after the collector, MaxBackoff %v", name, d, maxBackoff)
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
	col.wait(t, fmt.Sprintf("%s: frame %d", name, seq), func(rs []logsock.Record, _ []error) bool {
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

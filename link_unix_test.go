//go:build unix

package logsock_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/logsocktest"
	"github.com/logsock/logsock/internal/proctest"
)

// TestBackoffAgainstFlappingCollectors: against a collector that accepts
// and closes at once (a load balancer with no backend), or after reading
// the handshake, a client with the default Config, in both modes, logging
// once a millisecond or in a tight loop, makes its attempts on the
// backoff schedule, and uses under 10% of a core (issue 11, fault 2: 779
// connections a second at 1 Log/ms, 6,000 and a whole core in a tight
// loop, when any write the kernel accepted reset the backoff). Each client
// runs in a child process, so that its CPU time is its own. The window is
// 3 s; LOGSOCK_TEST_FLAP_WINDOW=10s runs the 10 s.
//
// Under Block, a tight loop soon fills the buffer and then waits in Log
// (WriteTimeout, 5 s, is longer than the window): it is a parked client.
// Its buffer is 64 KiB: with the default 4 MiB, the calls that fill it
// again after each connection took the kernel's share cost 5 to 9% of a
// core, and beside two CPU hogs 11.7% (issue 17), as much as the bound;
// with 64 KiB, 0.6 to 1.2%. Under DropOldest every call returns at once,
// so the tight loop runs the slow path, which checks whether an attempt
// is due, all the window long: it must still keep to the schedule, and
// its buffer must really be full (frames dropped). The buffer is 64 KiB,
// so that it fills between two attempts under the race detector too (4
// MiB did not, once: each connection takes about 1 MB before the
// collector's close reaches the client, and a drop from a full 4 MiB
// buffer costs 200 to 400 µs). Its CPU is its loop's, all the processor
// it is given (a third to two thirds of a core each, measured with the
// others beside it on 2 cores): not bounded, only logged. (A rest of 1 ms
// each 100 calls spared that CPU, but in one stress run a DropOldest child
// then made 11 connections where the schedule allows 8: not understood, so
// the loops are tight again.)
//
// The connections counted are all that the collector accepted: the child
// closes its LogSocket at the end of the window, after which nothing
// dials, and the bound is the schedule's over the window and that Close.
// (Counted by the time of accept, a busy machine's late accepts passed
// for fewer.)
func TestBackoffAgainstFlappingCollectors(t *testing.T) {
	t.Parallel()
	window := 3 * time.Second
	if w := os.Getenv("LOGSOCK_TEST_FLAP_WINDOW"); w != "" {
		var err error
		if window, err = time.ParseDuration(w); err != nil {
			t.Fatal(err)
		}
	}
	type run struct {
		name  string
		mode  logsocktest.FakeMode
		cfg   logsock.Config
		every time.Duration
		col   *logsocktest.FakeCollector
		r     loadReport
		err   error
	}
	var runs []*run
	var wg sync.WaitGroup
	for _, kind := range []struct {
		name string
		mode logsocktest.FakeMode
	}{{"accept-close", logsocktest.FakeClose}, {"handshake-close", logsocktest.FakeHandshakeClose}} {
		for _, batching := range []bool{false, true} {
			for _, load := range []struct {
				rate  string
				every time.Duration // 0: a tight loop
				cfg   logsock.Config
			}{
				{"every=1ms", time.Millisecond, logsock.Config{}},
				{"tight", 0, logsock.Config{BufferBytes: 64 << 10}},
				{"tight/DropOldest", 0, logsock.Config{Overflow: logsock.DropOldest, BufferBytes: 64 << 10}},
			} {
				load.cfg.Batching = batching
				r := &run{name: fmt.Sprintf("%s/batching=%v/%s", kind.name, batching, load.rate),
					mode: kind.mode, cfg: load.cfg, every: load.every, col: logsocktest.NewFakeCollector(t, "tcp", kind.mode)}
				runs = append(runs, r)
				// All at once: the clients wait more than they work, and
				// each measures its own CPU time.
				wg.Go(func() { r.r, r.err = runLoadChild("tcp", r.col.Addr, r.cfg, r.every, window) })
			}
		}
	}
	wg.Wait()
	for _, r := range runs {
		t.Run(r.name, func(t *testing.T) {
			for try := 1; ; try++ {
				inconclusive := checkLoad(t, r.col, r.cfg.Overflow, r.r, r.err)
				if inconclusive == "" {
					return
				}
				if try == 3 {
					t.Fatalf("3 tries, none conclusive; the last: %s", inconclusive)
				}
				// Again, alone: the machine kept the child from working.
				// (A child that made 0 calls in the window, 1 in some 26
				// race runs beside two CPU hogs, was the library's: a call
				// whose dial ended before it began to wait slept on to its
				// deadline. Fixed: the wait takes its channel with its look
				// at the link.)
				t.Logf("try %d: %s", try, inconclusive)
				r.col = logsocktest.NewFakeCollector(t, "tcp", r.mode)
				r.r, r.err = runLoadChild("tcp", r.col.Addr, r.cfg, r.every, window)
			}
		})
	}
}

// checkLoad checks the report of a load child against col, a flapping
// collector; it fails t, or reports why the run proves nothing.
func checkLoad(t *testing.T, col *logsocktest.FakeCollector, overflow logsock.Overflow, r loadReport, err error) (inconclusive string) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	// Every connection the child made, once the collector has accepted
	// those it counted: some may wait in the backlog.
	conns := len(col.WaitConns(t, int(r.Connects)))
	// The child's sleep may overrun the window on a busy machine.
	took, dialing := r.End.Sub(r.Start), r.Closed.Sub(r.Start)
	bound := backoffBound(dialing, 50*time.Millisecond, 5*time.Second) // the defaults
	t.Logf("%d connections in %v (bound %d), %d calls, CPU %v in %v (%.1f%% of a core), Stats %+v",
		conns, dialing, bound, r.Calls, r.CPU, took, 100*r.CPU.Seconds()/took.Seconds(), r.Stats)
	if conns > bound {
		// The bound holds for a collector that closes each connection at
		// once: one that the machine kept from accepting for a second made
		// the connection a healthy one, which resets the backoff (stress
		// runs under the race detector beside two CPU hogs: 9 and 11 of 8,
		// with 31 more tests in parallel than before). A client off its
		// schedule fails every try.
		return fmt.Sprintf("%d connections in %v: the backoff schedule allows %d", conns, dialing, bound)
	}
	if conns < 3 || r.Stats.Connects < 3 {
		return fmt.Sprintf("%d connections, %d calls, Stats %+v: the client hardly retried, the run proves nothing", conns, r.Calls, r.Stats)
	}
	if overflow != logsock.Block {
		// Enough calls to fill the buffer (4 MiB of 100-byte frames)
		// and nothing dropped: they did not all return at once. A
		// child the machine kept from running that much proves
		// nothing either way (stress run: 7,889 calls in 3 s).
		if r.Stats.Dropped == 0 && r.Calls > 50_000 {
			t.Errorf("Stats %+v: nothing dropped in %d calls, the buffer never filled: the calls did not all return at once", r.Stats, r.Calls)
		}
		return "" // its CPU is its loop's
	}
	// The old client spun at up to 87% of a core, and a spinning
	// client gets what the DropOldest loops get, a quarter to a
	// third of a core beside two CPU hogs. This one's CPU is its
	// calls and writes: beside the hogs 2.8 to 3.7% of a core at
	// one call a millisecond, 0.6 to 1.2% in a tight loop. The race
	// detector's own cost is not the client's.
	if !raceEnabled && r.CPU > took/10 {
		t.Errorf("the client used %v of CPU in %v: over 10%% of a core", r.CPU, took)
	}
	return ""
}

// backoffBound is the most connections that a client on the backoff
// schedule can make in window to a collector that closes each at once:
// the first, one more at once after its loss, then one after each wait,
// which is at least half the backoff, doubling from min up to max.
func backoffBound(window, min, max time.Duration) int {
	n, elapsed := 2, time.Duration(0)
	for b := min; ; b = 2 * b {
		b = minDuration(b, max)
		if elapsed += b / 2; elapsed > window {
			return n
		}
		n++
	}
}

func minDuration(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}

// loadReport is what the "load" child prints.
type loadReport struct {
	CPU        time.Duration // user and system time in the window
	Start, End time.Time     // the window, as the child's clock saw it
	Calls      int64
	Stats      logsock.Stats // at End
	Closed     time.Time     // when Close, after End, returned: nothing dials after
	Connects   uint64        // Stats.Connects then
}

// runLoadChild runs this binary as a "load" child against the collector
// at addr, with the mode, Overflow and BufferBytes of cfg, and returns its
// report.
func runLoadChild(network, addr string, cfg logsock.Config, every, window time.Duration) (loadReport, error) {
	cmd := proctest.ChildCommand("load", "LOGSOCK_TEST_NETWORK="+network, "LOGSOCK_TEST_ADDR="+addr,
		"LOGSOCK_TEST_BATCHING="+strconv.FormatBool(cfg.Batching), "LOGSOCK_TEST_OVERFLOW="+strconv.Itoa(int(cfg.Overflow)),
		"LOGSOCK_TEST_BUFFER="+strconv.Itoa(cfg.BufferBytes), "LOGSOCK_TEST_EVERY="+every.String(), "LOGSOCK_TEST_WINDOW="+window.String())
	out, err := cmd.Output()
	if err != nil {
		return loadReport{}, fmt.Errorf("load child: %w", err)
	}
	var r loadReport
	if err := json.Unmarshal(out, &r); err != nil {
		return loadReport{}, fmt.Errorf("load child printed %q: %w", out, err)
	}
	return r, nil
}

// childLoad is the "load" child: a LogSocket with the default Config (but
// the mode, LOGSOCK_TEST_BATCHING, the Overflow policy,
// LOGSOCK_TEST_OVERFLOW, a number, and LOGSOCK_TEST_BUFFER, BufferBytes)
// logs 100-byte frames every
// LOGSOCK_TEST_EVERY (0: in a tight loop) for LOGSOCK_TEST_WINDOW; then it
// closes the LogSocket, with a CloseTimeout of 1 ms (the wait to deliver
// is not the measure's), prints a loadReport and exits.
func childLoad() int {
	every, err1 := time.ParseDuration(os.Getenv("LOGSOCK_TEST_EVERY"))
	window, err2 := time.ParseDuration(os.Getenv("LOGSOCK_TEST_WINDOW"))
	batching, err3 := strconv.ParseBool(os.Getenv("LOGSOCK_TEST_BATCHING"))
	overflow, err4 := strconv.Atoi(os.Getenv("LOGSOCK_TEST_OVERFLOW"))
	buffer, err5 := strconv.Atoi(os.Getenv("LOGSOCK_TEST_BUFFER"))
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
		fmt.Fprintln(os.Stderr, "load child:", err)
		return 2
	}
	ls, err := logsock.New(os.Getenv("LOGSOCK_TEST_NETWORK"), os.Getenv("LOGSOCK_TEST_ADDR"),
		&logsock.Config{Batching: batching, Overflow: logsock.Overflow(overflow), BufferBytes: buffer, CloseTimeout: time.Millisecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, "load child:", err)
		return 2
	}
	var calls atomic.Int64
	start, before := time.Now(), cpuTime()
	go func() {
		msg := strings.Repeat("x", 100)
		var tick <-chan time.Time
		if every > 0 {
			tick = time.NewTicker(every).C
		}
		for {
			if tick != nil {
				<-tick
			}
			ls.Log(msg)
			calls.Add(1)
		}
	}()
	time.Sleep(window) // the length of the measure
	r := loadReport{CPU: cpuTime() - before, Start: start, End: time.Now(), Calls: calls.Load(), Stats: ls.Stats()}
	ls.Close() // what it could not deliver is dropped: fine
	r.Closed, r.Connects = time.Now(), ls.Stats().Connects
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		fmt.Fprintln(os.Stderr, "load child:", err)
		return 2
	}
	return 0
}

// cpuTime returns the user and system time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

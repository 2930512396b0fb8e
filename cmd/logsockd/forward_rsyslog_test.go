//go:build unix

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/logsocktest"
	"github.com/logsock/logsock/internal/proctest"
	"github.com/logsock/logsock/internal/rsyslogtest"
)

// forwardMsg is the message numbered seq of who: non-ASCII, invalid UTF-8
// and spaces included, to check that rsyslog receives the bytes as sent.
func forwardMsg(who string, seq int) string {
	return fmt.Sprintf("%s %d héllo wörld ✓ \xff \"q\" \\ end", who, seq)
}

// logNumbered logs forwardMsg(who, seq) for seq in arg, "FROM TO", and
// flushes.
func logNumbered(ls *logsock.LogSocket, who, arg string) error {
	var from, to int
	if _, err := fmt.Sscan(arg, &from, &to); err != nil {
		return fmt.Errorf("lognum %q: %w", arg, err)
	}
	for seq := from; seq < to; seq++ {
		if err := ls.Log(forwardMsg(who, seq)); err != nil {
			return fmt.Errorf("message %d: %w", seq, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return ls.Flush(ctx)
}

// TestLogsockdForwardToRsyslog is the fleet's hop, end to end: a parent
// and a child that inherited its connection log 100,000 records into
// logsockd over a Unix socket; logsockd forwards them to a real rsyslogd
// (imptcp, octet-counted RFC 5424), which writes PROCID and MSG to a file.
// Each record arrives once, with its writer's pid (the child's, although
// its connection's handshake names the parent) and its exact bytes.
// Between the two halves rsyslogd is stopped and started again: the
// connection dies under the forwarder, and the second half, held while
// rsyslogd is down, is delivered once it is back.
func TestLogsockdForwardToRsyslog(t *testing.T) {
	t.Parallel()
	rsyslogtest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rs, err := rsyslogtest.Start(ctx, t.TempDir(), rsyslogtest.Lines)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	// The default buffer (64 MiB) holds the half that waits out the
	// outage, 50,000 records of about 210 B (the client's default, 4 MiB,
	// held 20,000: beyond, the oldest were dropped).
	p, addrs := startDaemon(t, "-listen", "unix://"+logsocktest.SocketPath(t),
		"-forward", "syslog+tcp://"+rs.Addr())
	ls := dial(t, addrs[0], &logsock.Config{Batching: true})
	// Both in batching mode: 100,000 records take milliseconds, not
	// seconds that a loaded machine would stretch.
	ch := proctest.StartChild(t, ls.Start, "lognum")
	pids := map[string]string{"parent": strconv.Itoa(os.Getpid()), "child": strconv.Itoa(ch.Cmd.Process.Pid)}

	const half = 25000 // a process, a half: 100,000 records in all
	logHalf := func(k int) {
		t.Helper()
		arg := fmt.Sprintf("%d %d", k*half, (k+1)*half)
		done := make(chan string, 1)
		go func() { done <- ch.Do(t, "lognum "+arg) }()
		if err := logNumbered(ls, "parent", arg); err != nil {
			t.Fatal(err)
		}
		if got := <-done; got != "ok" {
			t.Fatalf("child: %s", got)
		}
	}
	logHalf(0)
	if _, err := rs.WaitLines(ctx, 2*half); err != nil {
		t.Fatal(err)
	}
	if err := rs.Stop(); err != nil {
		t.Fatal(err)
	}
	logHalf(1)
	// The second half is in logsockd's forwarder, which cannot connect:
	// it holds them.
	p.Signal(t, syscall.SIGUSR1)
	held := p.waitLine(t, "logsockd: forward "+rs.Addr()+": ")
	if counter(t, held, "held") == 0 {
		t.Errorf("%s: the forwarder held nothing while rsyslogd was down", held)
	}
	if err := rs.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, waitTimeout)
	defer wcancel()
	lines, err := rs.WaitLines(wctx, 4*half)
	if err != nil {
		p.Signal(t, syscall.SIGUSR1)
		p.waitLine(t, "logsockd: server: ") // the counters, after the forwarder's
		t.Fatalf("%v (at the stop: %s); logsockd's standard error:\n%s", err, held, p.Stderr)
	}

	seen := make(map[string]int, len(lines))
	for _, line := range lines {
		procid, msg, err := rsyslogtest.ParseLine(line)
		if err != nil {
			t.Fatal(err)
		}
		who, rest, _ := strings.Cut(string(msg), " ")
		seqText, _, _ := strings.Cut(rest, " ")
		seq, err := strconv.Atoi(seqText)
		if err != nil || !bytes.Equal(msg, []byte(forwardMsg(who, seq))) {
			t.Fatalf("line %q: message %q is none that was sent", line, msg)
		}
		if procid != pids[who] {
			t.Fatalf("line %q: PROCID %s, want the %s's pid %s", line, procid, who, pids[who])
		}
		seen[who+" "+seqText]++
	}
	for _, who := range []string{"parent", "child"} {
		for seq := range 2 * half {
			if n := seen[who+" "+strconv.Itoa(seq)]; n != 1 {
				t.Fatalf("%s's record %d arrived %d times, want once (held at the stop: %s)", who, seq, n, held)
			}
		}
	}
	ch.Wait(t)
	fwd := exitCounters(t, p, "logsockd: forward "+rs.Addr()+": ")
	if counter(t, fwd, "frames") != 4*half || counter(t, fwd, "dropped") != 0 || counter(t, fwd, "reconnects") < 1 {
		t.Errorf("%s: want %d frames, none dropped, a reconnect", fwd, 4*half)
	}
}

// TestLogsockdForwardRestartUnderLoad stops rsyslogd while logsockd's
// forwarder writes to it, and checks what syslog over TCP promises then,
// and no more. What rsyslogd's receive buffer held unread when it
// stopped, and what the forwarder's send buffer held, is lost, uncounted,
// as logsockd's documentation says. A parent and an inheriting child log
// numbered records without pause; rsyslogd, once it has written 20,000,
// is held still (SIGSTOP) until its connection has bytes unread, whatever
// the machine's pace, then stopped (SIGTERM, SIGCONT). The forwarder
// holds what comes next, more than the socket buffers take; rsyslogd
// starts again. The test checks that
//   - every record logged once the restarted rsyslogd has written a line
//     (so the forwarder is connected to it) arrives;
//   - no record arrives twice or torn, and each with its writer's PROCID;
//   - the records lost are one run of each writer's, logged before that
//     line, and no more than the kernel's socket buffers hold (the maxima
//     of net.ipv4.tcp_rmem and tcp_wmem): a forwarder that lost what it
//     held, or did not reconnect, fails;
//   - logsockd's counters: none dropped, a frame written for each record
//     logged, a reconnect.
func TestLogsockdForwardRestartUnderLoad(t *testing.T) {
	t.Parallel()
	rsyslogtest.Require(t)
	rmem, wmem := tcpMemMax(t, "tcp_rmem"), tcpMemMax(t, "tcp_wmem")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rs, err := rsyslogtest.Start(ctx, t.TempDir(), rsyslogtest.Lines)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	// Room for what the outage holds (a little more than the socket
	// buffers hold) and what piles up, with plenty to spare: the counters
	// must show no drop.
	fwdBuffer := 4*(rmem+wmem) + 64<<20
	p, addrs := startDaemon(t, "-listen", "unix://"+logsocktest.SocketPath(t),
		"-forward", "syslog+tcp://"+rs.Addr(), "-forward-buffer", strconv.Itoa(fwdBuffer))
	fwdPrefix := "logsockd: forward " + rs.Addr() + ": "
	ls := dial(t, addrs[0], &logsock.Config{Batching: true})
	ch := proctest.StartChild(t, ls.Start, "lognum")
	pids := map[string]string{"parent": strconv.Itoa(os.Getpid()), "child": strconv.Itoa(ch.Cmd.Process.Pid)}
	writers := []*flowWriter{
		newFlowWriter("parent", func(from, to int) error {
			return logNumbered(ls, "parent", fmt.Sprintf("%d %d", from, to))
		}),
		newFlowWriter("child", func(from, to int) error {
			if _, err := fmt.Fprintf(ch.In, "lognum %d %d\n", from, to); err != nil {
				return err
			}
			if !ch.Out.Scan() {
				return fmt.Errorf("no answer: %v", ch.Out.Err())
			}
			if got := ch.Out.Text(); got != "ok" {
				return errors.New(got)
			}
			return nil
		}),
	}
	for _, w := range writers {
		go w.run()
	}
	t.Cleanup(func() { // before the child is killed
		for _, w := range writers {
			w.finish(0)
			<-w.done
		}
	})
	allow := func(n int) {
		for _, w := range writers {
			w.allow(n)
		}
	}

	out := &fileTail{path: rs.Output()}
	seen := map[string][]int{"parent": nil, "child": nil} // arrivals, by seq
	lineCount := 0
	take := func(lines []string) {
		t.Helper()
		for _, line := range lines {
			procid, msg, err := rsyslogtest.ParseLine(line)
			if err != nil {
				t.Fatal(err)
			}
			who, rest, _ := strings.Cut(string(msg), " ")
			seqText, _, _ := strings.Cut(rest, " ")
			seq, err := strconv.Atoi(seqText)
			if err != nil || seq < 0 || !bytes.Equal(msg, []byte(forwardMsg(who, seq))) {
				t.Fatalf("line %q: message %q is none that was sent (torn?)", line, msg)
			}
			if procid != pids[who] {
				t.Fatalf("line %q: PROCID %s, want the %s's pid %s", line, procid, who, pids[who])
			}
			s := seen[who]
			for len(s) <= seq {
				s = append(s, 0)
			}
			if s[seq]++; s[seq] > 1 {
				t.Fatalf("%s's record %d arrived twice", who, seq)
			}
			seen[who] = s
		}
		lineCount += len(lines)
	}
	var status string // what the last cond saw, for a failure
	// waitFor reads rsyslogd's output until cond holds.
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		wctx, wcancel := context.WithTimeout(ctx, waitTimeout)
		defer wcancel()
		for {
			lines, err := out.read()
			if err != nil {
				t.Fatal(err)
			}
			take(lines)
			if cond() {
				return
			}
			select {
			case <-wctx.Done():
				p.Signal(t, syscall.SIGUSR1)
				p.waitLine(t, "logsockd: server: ")
				t.Fatalf("rsyslogd's output: %d lines, still not %s%s; logsockd's standard error:\n%s", lineCount, what, status, p.Stderr)
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	// holdAtLeast lets the writers log until the forwarder holds n
	// records, then pauses them; it returns the forwarder's counters.
	holdAtLeast := func(n int) string {
		t.Helper()
		allow(math.MaxInt)
		defer func() {
			for _, w := range writers {
				w.pause()
			}
		}()
		deadline := time.After(waitTimeout)
		for {
			c := forwardCounters(t, p, fwdPrefix)
			if counter(t, c, "dropped") != 0 {
				t.Fatalf("%s: the forwarder dropped records, with %d B of buffer", c, fwdBuffer)
			}
			if counter(t, c, "held") >= n {
				return c
			}
			select {
			case <-deadline:
				t.Fatalf("%s: the forwarder holds fewer than %d records after %v", c, n, waitTimeout)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}

	// The load: the writers log without pause, and rsyslogd writes their
	// records out as they come.
	allow(math.MaxInt)
	waitFor("20,000 lines", func() bool { return lineCount >= 20000 })
	// The bound on what a stop loses: what the socket buffers hold, in
	// records as forwarded.
	c := forwardCounters(t, p, fwdPrefix)
	frameBytes := counter(t, c, "bytes") / counter(t, c, "frames")
	bound := (rmem + wmem) / frameBytes
	// rsyslogd stops while the forwarder writes to it, and has not read
	// all it received. Held still (SIGSTOP) until it has not, so that this
	// is so whatever the machine's pace; then stopped (SIGTERM, SIGCONT),
	// the restart's first half.
	if err := rs.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(waitTimeout)
	var unread int
	for {
		if unread, err = rs.Unread(); err != nil {
			t.Fatal(err)
		}
		if unread >= 64<<10 {
			break
		}
		select {
		case <-deadline:
			t.Fatalf("rsyslogd, stopped, has %d B unread after %v", unread, waitTimeout)
		case <-time.After(5 * time.Millisecond):
		}
	}
	if err := rs.Stop(); err != nil {
		t.Fatal(err)
	}
	waitFor("read to the end", func() bool { return true })
	atStop := lineCount // all that the stopped rsyslogd wrote
	// More than the socket buffers could have taken, held by the
	// forwarder, so that losing what it holds cannot pass for what the
	// kernel lost.
	atRestart := holdAtLeast(bound + bound/4)
	if err := rs.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	// A line from the restarted rsyslogd: the forwarder is connected to
	// it, and whatever is logged from now on must arrive. Meanwhile, the
	// writers log a chunk each every 50 ms, so that the restarted rsyslogd
	// has lines to write even from a forwarder that lost what it held.
	var trickled time.Time
	waitFor("a line from the restarted rsyslogd", func() bool {
		if lineCount > atStop {
			return true
		}
		if time.Since(trickled) >= 50*time.Millisecond {
			trickled = time.Now()
			for _, w := range writers {
				w.allow(int(w.begun.Load()) + flowChunk)
			}
		}
		return false
	})
	const after = 20000 // records each writer logs from then on
	marks := map[string]int{}
	total := 0
	for _, w := range writers {
		marks[w.who] = w.finish(after)
	}
	for _, w := range writers {
		if err := <-w.done; err != nil {
			t.Fatalf("%s: %v", w.who, err)
		}
		w.done <- nil // for the cleanup
		total += w.end
	}

	// lostRun returns the records of w that have not arrived: n of them,
	// from first to last, and whether they are one run.
	lostRun := func(w *flowWriter) (first, last, n int, oneRun bool) {
		s := seen[w.who]
		first, last = -1, -1
		for seq := range w.end {
			if seq >= len(s) || s[seq] == 0 {
				if first < 0 {
					first = seq
				}
				last, n = seq, n+1
			}
		}
		return first, last, n, n == 0 || last-first+1 == n
	}
	// Until every record logged after the restart has arrived, and the
	// lost are one run of each writer's (rsyslogd may write a batch late).
	waitFor("every record logged after the restart, and the lost one run of each writer's", func() bool {
		done := true
		status = ""
		for _, w := range writers {
			first, last, n, oneRun := lostRun(w)
			status += fmt.Sprintf("; %s: logged %d, after the restart from %d, missing %d from %d to %d", w.who, w.end, marks[w.who], n, first, last)
			if last >= marks[w.who] || !oneRun {
				done = false
			}
		}
		return done
	})
	lost := 0
	for _, w := range writers {
		first, last, n, _ := lostRun(w)
		t.Logf("%s: logged %d, lost %d (%d to %d); logged after the restart from %d", w.who, w.end, n, first, last, marks[w.who])
		lost += n
	}
	t.Logf("lost %d of %d records, at most %d (tcp_rmem %d + tcp_wmem %d, %d B a record); rsyslogd had written %d at the stop (%d B unread, at least); at the restart %s",
		lost, total, bound, rmem, wmem, frameBytes, atStop, unread, atRestart)
	if lost > bound {
		t.Errorf("lost %d records, more than the socket buffers hold (%d of %d B)", lost, bound, frameBytes)
	}

	ch.Wait(t)
	fwd := exitCounters(t, p, fwdPrefix)
	if counter(t, fwd, "frames") != total || counter(t, fwd, "dropped") != 0 || counter(t, fwd, "reconnects") < 1 {
		t.Errorf("%s: want %d frames, none dropped, a reconnect", fwd, total)
	}
}

// TestLogsockdForwardStall: a syslog server that stops reading for a
// while (rsyslogd held still by SIGSTOP) gets every record, in order, once
// it reads again, and the forwarder drops nothing and keeps its
// connection: issue 20 saw 31,627 records reach rsyslogd after newer ones
// when the forwarder gave its stalled connection up after 5 s (the
// client's WriteTimeout) for a new one, since rsyslogd then read what its
// kernel held for both in no set order. rsyslogd runs with one main queue
// worker, which writes the records in the order it reads them. A writer
// logs 20,000 records a second; rsyslogd is stopped until the forwarder's
// write has been blocked long enough to queue 10,000 records behind it
// (both kernels' buffers are full), and then for 6 s more, past the 5 s
// after which the forwarder used to give up.
func TestLogsockdForwardStall(t *testing.T) {
	t.Parallel()
	rsyslogtest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rs, err := rsyslogtest.StartWith(ctx, t.TempDir(), rsyslogtest.Options{Template: rsyslogtest.Lines, Ordered: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	p, addrs := startDaemon(t, "-listen", "unix://"+logsocktest.SocketPath(t), "-forward", "syslog+tcp://"+rs.Addr())
	fwdPrefix := "logsockd: forward " + rs.Addr() + ": "
	ls := dial(t, addrs[0], &logsock.Config{Batching: true})

	// The writer: 200 records every 10 ms while running is set.
	var running atomic.Bool
	running.Store(true)
	stop, stopped := make(chan struct{}), make(chan int)
	go func() {
		seq := 0
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				stopped <- seq
				return
			case <-tick.C:
			}
			for range 200 {
				if !running.Load() {
					break
				}
				if err := ls.Log(forwardMsg("w", seq)); err != nil {
					t.Error(err)
				}
				seq++
			}
		}
	}()
	t.Cleanup(func() {
		select {
		case <-stop:
		default:
			close(stop)
			<-stopped
		}
	})

	out := &fileTail{path: rs.Output()}
	next := 0    // the seq of the next record to arrive, in order
	var c string // the forwarder's counters when the stall began
	read := func() {
		t.Helper()
		lines, err := out.read()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range lines {
			_, msg, err := rsyslogtest.ParseLine(line)
			if err != nil {
				t.Fatal(err)
			}
			if want := forwardMsg("w", next); string(msg) != want {
				t.Fatalf("line %q: message %q, want record %d, %q: lost, reordered or torn (at the stall: %s)", line, msg, next, want, c)
			}
			next++
		}
	}
	// waitFor reads rsyslogd's output until cond holds, for up to limit.
	waitFor := func(what string, limit time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.After(limit)
		for read(); !cond(); read() {
			select {
			case <-deadline:
				t.Fatalf("%s: not after %v: %d records arrived; forwarder %s", what, limit, next, forwardCounters(t, p, fwdPrefix))
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	waitFor("5,000 records", waitTimeout, func() bool { return next >= 5000 })
	if err := rs.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// Until the kernels' buffers are full: tens of MB at most (tcp_rmem's
	// and tcp_wmem's maxima), a few MB here.
	waitFor("10,000 records held behind a blocked write", time.Minute, func() bool {
		c = forwardCounters(t, p, fwdPrefix)
		return counter(t, c, "held") >= 10000
	})
	running.Store(false)
	time.Sleep(6 * time.Second) // the stall itself: past the client's WriteTimeout (5 s)
	if err := rs.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitFor("the records from before the stall", waitTimeout, func() bool { return next >= counter(t, c, "frames") })
	running.Store(true)
	time.Sleep(time.Second) // a second of records after the stall
	close(stop)
	total := <-stopped
	waitFor(fmt.Sprintf("all %d records", total), waitTimeout, func() bool { return next >= total })

	fwd := exitCounters(t, p, fwdPrefix)
	if counter(t, fwd, "frames") != total || counter(t, fwd, "dropped") != 0 || counter(t, fwd, "reconnects") != 0 {
		t.Errorf("%s: want %d frames, none dropped, no reconnect (at the stall: %s)", fwd, total, c)
	}
	t.Logf("%d records, in order; at the stall: %s", total, c)
}

// flowWriter logs numbered records, chunk after chunk, as far as it is
// allowed.
type flowWriter struct {
	who   string
	log   func(from, to int) error // logs [from, to) and flushes
	begun atomic.Int64             // the end of the last chunk begun
	limit atomic.Int64             // no chunk begins at or past it
	wake  chan struct{}            // the limit changed
	quit  chan struct{}            // closed: end at the limit
	done  chan error
	end   int // once done: records 0 to end were logged
}

const flowChunk = 1000

func newFlowWriter(who string, log func(from, to int) error) *flowWriter {
	return &flowWriter{who: who, log: log, wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan error, 1)}
}

func (w *flowWriter) run() {
	from := 0
	for {
		if int64(from) >= w.limit.Load() {
			select {
			case <-w.wake:
				continue
			case <-w.quit:
				if int64(from) >= w.limit.Load() {
					w.end = from
					w.done <- nil
					return
				}
				continue
			}
		}
		w.begun.Store(int64(from + flowChunk))
		if err := w.log(from, from+flowChunk); err != nil {
			w.done <- err
			return
		}
		from += flowChunk
	}
}

// allow lets w log records up to seq n.
func (w *flowWriter) allow(n int) {
	w.limit.Store(int64(n))
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// pause stops w after the chunk that it is logging.
func (w *flowWriter) pause() { w.allow(int(w.begun.Load())) }

// finish lets w log n more records from the next chunk that it begins,
// then end; it returns the first of them.
func (w *flowWriter) finish(n int) int {
	next := int(w.begun.Load()) // the chunks from next on begin after this
	w.allow(next + n)
	select {
	case <-w.quit:
	default:
		close(w.quit)
	}
	return next
}

// exitCounters stops logsockd (SIGTERM), waits for it to exit 0, and
// returns the forwarder's counters at exit: the last line that starts with
// prefix.
func exitCounters(t *testing.T, p *proc, prefix string) string {
	t.Helper()
	p.Signal(t, syscall.SIGTERM)
	p.MustExit(t)
	var last string
	for _, l := range p.Stderr.Lines() {
		if strings.HasPrefix(l, prefix) {
			last = l
		}
	}
	return last
}

// forwardCounters asks logsockd for its counters (SIGUSR1) and returns the
// forwarder's line.
func forwardCounters(t *testing.T, p *proc, prefix string) string {
	t.Helper()
	count := func(lines []string) (n int, last string) {
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) {
				n, last = n+1, l
			}
		}
		return n, last
	}
	before, _ := count(p.Stderr.Lines())
	p.Signal(t, syscall.SIGUSR1)
	lines := p.WaitLines(t, p.Stderr, "the forwarder's counters", func(lines []string) bool {
		n, _ := count(lines)
		return n > before
	})
	_, last := count(lines)
	return last
}

// tcpMemMax returns the maximum of /proc/sys/net/ipv4/NAME (tcp_rmem,
// tcp_wmem): the most that the kernel lets a TCP socket's buffer grow to.
func tcpMemMax(t *testing.T, name string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/net/ipv4/" + name)
	if err != nil {
		t.Skipf("no bound for the loss: %v", err)
	}
	f := strings.Fields(string(b))
	if len(f) != 3 {
		t.Fatalf("%s: %q", name, b)
	}
	n, err := strconv.Atoi(f[2])
	if err != nil {
		t.Fatalf("%s: %q", name, b)
	}
	return n
}

// fileTail reads the lines that another process appends to a file.
type fileTail struct {
	path string
	off  int64
	part []byte // an incomplete last line
}

// read returns the complete lines added since the last call.
func (f *fileTail) read() ([]string, error) {
	fh, err := os.Open(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.NewSectionReader(fh, f.off, math.MaxInt64-f.off))
	if err != nil {
		return nil, err
	}
	f.off += int64(len(b))
	b = append(f.part, b...)
	end := bytes.LastIndexByte(b, '\n')
	if end < 0 {
		f.part = b
		return nil, nil
	}
	f.part = append([]byte(nil), b[end+1:]...)
	return strings.Split(string(b[:end]), "\n"), nil
}

//go:build unix

package logsock_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logsock/logsock"
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
	// A buffer for the half that waits out the outage (its default, 4 MiB,
	// holds 20,000 of these records: beyond, the oldest are dropped).
	p, addrs := startLogsockd(t, (*exec.Cmd).Start, "-listen", "unix://"+socketPath(t),
		"-forward", "syslog+tcp://"+rs.Addr(), "-forward-buffer", strconv.Itoa(64<<20))
	ls := dialLogsockd(t, addrs[0], &logsock.Config{Batching: true})
	// Both in batching mode: 100,000 records take milliseconds, not the
	// seconds that a loaded machine would stretch past the life of
	// logsockd (childTimeout).
	ch := startChild(t, ls, "commands", "LOGSOCK_TEST_BATCHING=true")
	pids := map[string]string{"parent": strconv.Itoa(os.Getpid()), "child": strconv.Itoa(ch.cmd.Process.Pid)}

	const half = 25000 // a process, a half: 100,000 records in all
	logHalf := func(k int) {
		t.Helper()
		arg := fmt.Sprintf("%d %d", k*half, (k+1)*half)
		done := make(chan string, 1)
		go func() { done <- ch.do(t, "lognum "+arg) }()
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
	sendSignal(t, p, syscall.SIGUSR1)
	held := stderrLine(t, p, "logsockd: forward "+rs.Addr()+": ")
	if counter(t, held, "held") == 0 {
		t.Errorf("%s: the forwarder held nothing while rsyslogd was down", held)
	}
	if err := rs.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	// Within the life that the tests give a child process (childTimeout),
	// so that logsockd can still say what it holds.
	wctx, wcancel := context.WithTimeout(ctx, waitTimeout)
	defer wcancel()
	lines, err := rs.WaitLines(wctx, 4*half)
	if err != nil {
		sendSignal(t, p, syscall.SIGUSR1)
		stderrLine(t, p, "logsockd: server: ") // the counters, after the forwarder's
		t.Fatalf("%v (at the stop: %s); logsockd's standard error:\n%s", err, held, p.stderr)
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
	ch.wait(t)
	sendSignal(t, p, syscall.SIGTERM)
	p.mustExit(t)
	var fwd string // the counters at exit: the last of the forwarder's lines
	for _, l := range p.stderr.lines() {
		if strings.HasPrefix(l, "logsockd: forward "+rs.Addr()+": ") {
			fwd = l
		}
	}
	if counter(t, fwd, "frames") != 4*half || counter(t, fwd, "dropped") != 0 || counter(t, fwd, "reconnects") < 1 {
		t.Errorf("%s: want %d frames, none dropped, a reconnect", fwd, 4*half)
	}
}

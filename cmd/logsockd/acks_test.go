//go:build unix

package main

// Protocol v2 through logsockd (issue 19): acknowledged after the write,
// nothing lost or written twice across SIGKILLs, the v2 fields in the
// output, the tail scan at start.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/proctest"
	"github.com/logsock/logsock/internal/testenv"
)

// v2Line is what the tests read of a JSON line.
type v2Line struct {
	Time       string
	ClientTime string `json:"client_time"`
	Session    string
	Seq        uint64
	Level      string
	Tag        string
	Msg        string
}

// readV2Lines reads every line of the JSON file at path, each of which
// must parse.
func readV2Lines(t *testing.T, path string) []v2Line {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []v2Line
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l v2Line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %d of %s: %q: %v", len(lines)+1, path, sc.Text(), err)
		}
		lines = append(lines, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// ackClient logs "NAME I" for I from 0 to n-1 through a LogSocket with
// Acks, then flushes (which waits for the acknowledgements) and closes.
type ackClient struct {
	name   string
	ls     *logsock.LogSocket
	logged atomic.Int64
	err    error // the first error of Log, Flush or Close; read after done
	done   chan struct{}
}

func startAckClient(t *testing.T, name, network, address string, batching bool, n int) *ackClient {
	t.Helper()
	// Log waits for room while logsockd is down rather than drop.
	ls, err := logsock.Dial(network, address, &logsock.Config{Acks: true, Tag: name, Batching: batching,
		WriteTimeout: 2 * waitTimeout, CloseTimeout: waitTimeout, MinBackoff: time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c := &ackClient{name: name, ls: ls, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for i := range n {
			if err := ls.Log(fmt.Sprintf("%s %d", name, i)); err != nil {
				c.err = fmt.Errorf("Log %d: %w", i, err)
				ls.Close()
				return
			}
			c.logged.Add(1)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
		defer cancel()
		if err := ls.Flush(ctx); err != nil {
			c.err = fmt.Errorf("Flush: %w", err)
		}
		if err := ls.Close(); err != nil && c.err == nil {
			c.err = fmt.Errorf("Close: %w", err)
		}
	}()
	t.Cleanup(func() { ls.Close(); <-c.done })
	return c
}

// TestLogsockdAcksSIGKILL is issue 19's goal: logsockd -json -o FILE is
// SIGKILLed and started again 5 times while 4 clients with Acks (direct
// and batching, over TCP and a Unix socket) and logsock-cat -acks log:
// every record is in the file once, with the session and number that
// its client gave it, and every client reports success.
func TestLogsockdAcksSIGKILL(t *testing.T) {
	n := 200000
	if testing.Short() {
		n = 20000
	}
	dir := shortDir(t)
	sock, out := filepath.Join(dir, "s"), filepath.Join(dir, "out.jsonl")
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	tcp := fmt.Sprintf("127.0.0.1:%d", port)
	testenv.Program(t, "logsock-cat") // built before the clients start
	args := []string{"-listen", "tcp://" + tcp, "-listen", "unix://" + sock, "-json", "-o", out}
	p, _ := startDaemon(t, args...)

	clients := []*ackClient{
		startAckClient(t, "direct-tcp", "tcp", tcp, false, n),
		startAckClient(t, "batch-tcp", "tcp", tcp, true, n),
		startAckClient(t, "direct-unix", "unix", sock, false, n),
		startAckClient(t, "batch-unix", "unix", sock, true, n),
	}
	// logsock-cat holds at most 4 MiB and drops the oldest beyond, by
	// design: 20,000 lines fit, whatever the outages.
	const catN = 20000
	cat := startCatLines(t, "unix://"+sock, catN)

	acked := func() int64 {
		var sum int64
		for _, c := range clients {
			sum += int64(c.ls.Stats().Acked)
		}
		return sum
	}
	total := int64(len(clients) * n)
	for k := range int64(5) {
		// Under load: each kill comes when another sixth of the records
		// has been acknowledged.
		want := (k + 1) * total / 6
		waitFor(t, p, fmt.Sprintf("%d records acknowledged", want), func() bool { return acked() >= want })
		t.Logf("kill %d: %d records acknowledged, %d bytes in the file", k+1, acked(), fileSize(t, out))
		p.Signal(t, syscall.SIGKILL)
		p.Wait(t)
		p, _ = startDaemon(t, args...)
	}
	for _, c := range clients {
		select {
		case <-c.done:
		case <-time.After(2 * waitTimeout):
			t.Fatalf("client %s: %d records logged, not done; logsockd:\n%s", c.name, c.logged.Load(), p.Stderr)
		}
		if c.err != nil {
			t.Errorf("client %s: %v", c.name, c.err)
		}
		st := c.ls.Stats()
		t.Logf("client %s: acked=%d resent=%d reconnects=%d dropped=%d", c.name, st.Acked, st.Resent, st.Reconnects, st.Dropped)
	}
	if code := cat.exitCode(t); code != 0 {
		t.Errorf("logsock-cat exited %d; stderr:\n%s", code, cat.Stderr)
	}
	p.sigterm(t, 0)

	// Each client's records, in the order of the file: its I-th has
	// number I+1 in its session (a resent record keeps its number), and
	// is there once.
	type seen struct {
		session string
		count   []int
	}
	byName := map[string]*seen{}
	for _, l := range readV2Lines(t, out) {
		name, num, _ := strings.Cut(l.Msg, " ")
		i, err := strconv.Atoi(num)
		s := byName[name]
		if s == nil {
			s = &seen{session: l.Session, count: make([]int, max(n, catN))}
			byName[name] = s
		}
		if err != nil || i >= len(s.count) || l.Tag != name || l.Session != s.session || l.Seq != uint64(i)+1 {
			t.Fatalf("line %+v: want tag %s, session %s, seq %d", l, name, s.session, i+1)
		}
		s.count[i]++
	}
	for name, want := range map[string]int{"direct-tcp": n, "batch-tcp": n, "direct-unix": n, "batch-unix": n, "cat": catN} {
		s := byName[name]
		if s == nil {
			t.Errorf("%s: no record in the file", name)
			continue
		}
		lost, twice := 0, 0
		for _, c := range s.count[:want] {
			if c == 0 {
				lost++
			}
			twice += max(c-1, 0)
		}
		if lost != 0 || twice != 0 {
			t.Errorf("%s: %d of %d records lost, %d written twice", name, lost, want, twice)
		}
	}
	if t.Failed() {
		t.Logf("logsockd's last run:\n%s", p.Stderr)
	}
}

// startCatLines runs logsock-cat -acks, tag cat, to addr, with the lines
// "cat 0" to "cat n-1" on its standard input, written as fast as it
// reads them, then closed.
func startCatLines(t *testing.T, addr string, n int) *proc {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait) // after the process is killed, which ends a blocked write
	p := &proc{proctest.StartWith(t, func(cmd *exec.Cmd) error {
		cmd.Stdin = pr
		return cmd.Start()
	}, testenv.Program(t, "logsock-cat"), "-acks", "-tag", "cat", "-addr", addr, "-timeout", waitTimeout.String())}
	pr.Close()
	wg.Go(func() {
		defer pw.Close()
		w := bufio.NewWriter(pw)
		for i := range n {
			fmt.Fprintf(w, "cat %d\n", i)
		}
		w.Flush()
	})
	return p
}

//go:build unix

package main

// Protocol v2 through logsockd (issue 19): acknowledged after the write,
// nothing lost or written twice across SIGKILLs, the v2 fields in the
// output, the tail scan at start.

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/proctest"
	"github.com/logsock/logsock/internal/rsyslogtest"
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

// TestLogsockdAcksAfterWrite: logsockd acknowledges a record only once
// it is written. Its output is a FIFO that the test does not read yet:
// logsockd takes the records into its buffers (they hold all of them),
// but the FIFO takes 64 KiB and no more, so a Flush, which waits for the
// acknowledgements, cannot return; once the FIFO is read, it does, and
// every record is in what was read.
func TestLogsockdAcksAfterWrite(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	fifo := filepath.Join(dir, "out")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// Opened before logsockd, whose open for writing would wait for a
	// reader; not read until the test says.
	r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p, addrs := startDaemon(t, "-listen", "unix://"+filepath.Join(dir, "s"), "-json", "-o", fifo)
	ls := dial(t, addrs[0], &logsock.Config{Acks: true, Tag: "fifo"})
	// 4,000 lines of about 200 bytes: 800 KB, 12 times what the FIFO
	// holds, within logsockd's 1 MiB of buffers.
	const n = 4000
	for i := range n {
		if err := ls.Log(fmt.Sprintf("fifo %d %s", i, pad)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	err = ls.Flush(ctx)
	cancel()
	if err == nil {
		t.Fatalf("Flush returned nil while the output held what a FIFO nobody reads could not take: acknowledged before written (acked %d)", ls.Stats().Acked)
	}
	// What the FIFO took: 64 KiB of lines at most.
	if acked := ls.Stats().Acked; acked*150 > 64<<10 {
		t.Errorf("%d records acknowledged, more than the FIFO holds", acked)
	}

	lines := make(chan []string, 1)
	go func() {
		syscall.SetNonblock(int(r.Fd()), false)
		var got []string
		sc := bufio.NewScanner(r)
		for len(got) < n && sc.Scan() {
			got = append(got, sc.Text())
		}
		lines <- got
	}()
	ctx, cancel = context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := ls.Flush(ctx); err != nil {
		t.Fatalf("Flush, the FIFO read: %v; logsockd:\n%s", err, p.Stderr)
	}
	got := <-lines
	seqs := seqLines(t, got)
	checkRun(t, "fifo", seqs["fifo"], 0, n-1)
}

// TestLogsockdV2Fields: a v2 client's records carry its session, number,
// level, tag and time, in JSON and in text; a v1 client's, beside them,
// have none of those keys. With -fsync too, the records are acknowledged.
func TestLogsockdV2Fields(t *testing.T) {
	for _, format := range []string{"json", "text", "json-fsync"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			dir := shortDir(t)
			out := filepath.Join(dir, "out")
			args := []string{"-listen", "unix://" + filepath.Join(dir, "s"), "-o", out}
			if format != "text" {
				args = append(args, "-json")
			}
			if format == "json-fsync" {
				args = append(args, "-fsync")
			}
			p, addrs := startDaemon(t, args...)
			v1 := dial(t, addrs[0], nil)
			if err := v1.Log("plain"); err != nil {
				t.Fatal(err)
			}
			waitFileLines(t, p, out, 1)
			v2 := dial(t, addrs[0], &logsock.Config{Acks: true, Tag: "svc"})
			before := time.Now()
			if err := v2.Log("first"); err != nil {
				t.Fatal(err)
			}
			if err := v2.LogLevel(logsock.LevelWarning, "second"); err != nil {
				t.Fatal(err)
			}
			after := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			if err := v2.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			lines := waitFileLines(t, p, out, 3)
			p.sigterm(t, 0)

			clientTime := func(s string) {
				t.Helper()
				ct, err := time.Parse(time.RFC3339Nano, s)
				if err != nil || !strings.HasSuffix(s, "Z") || len(s) != len("2006-01-02T15:04:05.000000000Z") ||
					ct.Before(before) || ct.After(after) {
					t.Errorf("client time %q (%v): want RFC 3339 with 9 digits in UTC, between %v and %v", s, err, before, after)
				}
			}
			if format != "text" {
				var plain map[string]any
				if err := json.Unmarshal([]byte(lines[0]), &plain); err != nil {
					t.Fatal(err)
				}
				for _, k := range []string{"client_time", "session", "seq", "level", "tag"} {
					if _, ok := plain[k]; ok {
						t.Errorf("v1 line %s: has %q", lines[0], k)
					}
				}
				var recs [2]v2Line
				for i := range recs {
					if err := json.Unmarshal([]byte(lines[i+1]), &recs[i]); err != nil {
						t.Fatal(err)
					}
					r := recs[i]
					clientTime(r.ClientTime)
					if _, err := hex.DecodeString(r.Session); err != nil || len(r.Session) != 32 || r.Session != recs[0].Session ||
						r.Seq != uint64(i+1) || r.Tag != "svc" || r.Level != []string{"info", "warning"}[i] {
						t.Errorf("line %s", lines[i+1])
					}
				}
				return
			}
			if strings.Contains(lines[0], "session=") || strings.Contains(lines[0], "client_time=") {
				t.Errorf("v1 line %q", lines[0])
			}
			const ts = `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z`
			var session string
			for i, want := range []string{"1 level=info tag=svc run=.* first", "2 level=warning tag=svc run=.* second"} {
				re := regexp.MustCompile(`^` + ts + ` client_time=(` + ts + `) session=([0-9a-f]{32})/` + want + `$`)
				m := re.FindStringSubmatch(lines[i+1])
				if m == nil {
					t.Fatalf("line %q, want %s", lines[i+1], re)
				}
				clientTime(m[1])
				if i == 1 && m[2] != session {
					t.Errorf("sessions %s and %s", session, m[2])
				}
				session = m[2]
			}
		})
	}
}

// v2Raw is a v2 client written from PROTOCOL.md, whose session and
// numbers the test chooses.
type v2Raw struct {
	conn net.Conn
}

// dialV2Raw connects to addr (a Unix socket) and sends a hello for
// session, tag, whose first frame will be next; it returns the
// collector's acknowledged number, from its hello.
func dialV2Raw(t *testing.T, addr string, session logsock.SessionID, tag string, next uint64) (*v2Raw, uint64) {
	t.Helper()
	c, err := net.Dial("unix", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	le := binary.LittleEndian
	h := []byte{0xff, 'L', 'S', 0xff, 2, 0, byte(len(tag)), 0}
	h = le.AppendUint32(h, uint32(os.Getpid()))
	h = append(h, session[:]...)
	h = le.AppendUint64(h, next)
	h = append(h, tag...)
	if _, err := c.Write(h); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(waitTimeout))
	var sh [20]byte
	if _, err := io.ReadFull(c, sh[:]); err != nil {
		t.Fatal(err)
	}
	if string(sh[:4]) != "\xffLS\xff" || sh[4] != 2 || sh[5] != 0 {
		t.Fatalf("collector's hello % x", sh)
	}
	return &v2Raw{c}, le.Uint64(sh[12:])
}

// send sends the frames numbered from to to, messages "NAME SEQ".
func (r *v2Raw) send(t *testing.T, name string, from, to uint64) {
	t.Helper()
	le := binary.LittleEndian
	var b []byte
	for seq := from; seq <= to; seq++ {
		msg := fmt.Sprintf("%s %d", name, seq)
		b = le.AppendUint32(b, uint32(len(msg)))
		b = le.AppendUint32(b, uint32(seq))
		b = le.AppendUint64(b, uint64(time.Now().UnixNano()))
		b = append(b, byte(logsock.LevelInfo))
		b = append(b, msg...)
	}
	if _, err := r.conn.Write(b); err != nil {
		t.Fatal(err)
	}
}

// TestLogsockdTailScan: logsockd started on a file that holds records of
// two sessions (the first 10 of one, 5 of the other) learns their last
// numbers: its hello tells their clients, and the frames up to them,
// sent again, are dropped, not written twice.
func TestLogsockdTailScan(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	out, sock := filepath.Join(dir, "out"), filepath.Join(dir, "s")
	a, b := logsock.SessionID{0xa}, logsock.SessionID{0xb}
	f := newTestFormatter(true, false)
	var file []byte
	for seq := uint64(1); seq <= 10; seq++ {
		for _, s := range []struct {
			id   logsock.SessionID
			name string
			last uint64
		}{{a, "a", 10}, {b, "b", 5}} {
			if seq <= s.last {
				rec := v2Record(unixRecord(fmt.Sprintf("%s %d", s.name, seq)))
				rec.Session, rec.Seq, rec.Tag = s.id, seq, s.name
				file = f.append(file, rec)
			}
		}
	}
	if err := os.WriteFile(out, file, 0o600); err != nil {
		t.Fatal(err)
	}
	// It reads the file before it listens.
	p, _ := startDaemon(t, "-listen", "unix://"+sock, "-json", "-o", out)

	ca, acked := dialV2Raw(t, sock, a, "a", 1)
	if acked != 10 {
		t.Errorf("session a: the collector's hello acknowledges %d, want 10", acked)
	}
	ca.send(t, "a", 1, 12)
	cb, acked := dialV2Raw(t, sock, b, "b", 1)
	if acked != 5 {
		t.Errorf("session b: the collector's hello acknowledges %d, want 5", acked)
	}
	cb.send(t, "b", 1, 7)
	waitFileLines(t, p, out, 15+4)
	ca.conn.Close()
	cb.conn.Close()
	p.sigterm(t, 0)
	// The 15 frames sent again are counted as duplicates.
	if c := counter(t, p.waitLine(t, "logsockd: server: "), "duplicates"); c != 15 {
		t.Errorf("duplicates=%d at exit, want 15", c)
	}
	if len(p.matching("logsockd: output "+out+": 2 v2 sessions in its last")) != 1 {
		t.Errorf("logsockd did not say what it learned from the file; stderr:\n%s", p.Stderr)
	}

	seqs := map[string][]uint64{}
	for _, l := range readV2Lines(t, out) {
		name, _, _ := strings.Cut(l.Msg, " ")
		seqs[name] = append(seqs[name], l.Seq)
	}
	if fmt.Sprint(seqs["a"]) != fmt.Sprint([]uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}) ||
		fmt.Sprint(seqs["b"]) != fmt.Sprint([]uint64{1, 2, 3, 4, 5, 6, 7}) {
		t.Errorf("the file's numbers: %v; want each once", seqs)
	}
}

// TestLogsockdForwardV2 is issue 19's goal for syslog: a record logged at
// level error with tag svc while logsockd is down, delivered 2 s later,
// reaches rsyslogd through the forwarder with severity 3, APP-NAME svc
// and the time it was logged; a v1 record keeps severity 6, -app-name and
// the receive time.
func TestLogsockdForwardV2(t *testing.T) {
	t.Parallel()
	rsyslogtest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rs, err := rsyslogtest.Start(ctx, t.TempDir(), rsyslogtest.Header)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	sock := filepath.Join(shortDir(t), "s")
	ls, err := logsock.New("unix", sock, &logsock.Config{Acks: true, Tag: "svc", MaxBackoff: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ls.Close() })
	before := time.Now()
	if err := ls.LogLevel(logsock.LevelError, "disk full"); err != nil {
		t.Fatal(err)
	}
	logged := time.Now()
	// The outage the goal names: the record waits in the client for 2 s.
	time.Sleep(2 * time.Second)
	_, addrs := startDaemon(t, "-listen", "unix://"+sock, "-forward", "syslog+tcp://"+rs.Addr(), "-app-name", "daemon")
	ctx2, cancel2 := context.WithTimeout(ctx, waitTimeout)
	defer cancel2()
	if err := ls.Flush(ctx2); err != nil {
		t.Fatal(err)
	}
	delivered := time.Now()
	v1 := dial(t, addrs[0], nil)
	if err := v1.Log("plain"); err != nil {
		t.Fatal(err)
	}
	lines, err := rs.WaitLines(ctx2, 2)
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	type line struct {
		Time     string
		Severity string
		App      string
		Msg      string
	}
	var got [2]line
	for i := range got {
		if err := json.Unmarshal([]byte(lines[i]), &got[i]); err != nil {
			t.Fatalf("%s: %v", lines[i], err)
		}
	}
	at := func(l line) time.Time {
		t.Helper()
		ts, err := time.Parse(time.RFC3339Nano, l.Time)
		if err != nil {
			t.Fatalf("%+v: %v", l, err)
		}
		return ts
	}
	// TIMESTAMP has microseconds.
	if l := got[0]; l.Msg != "disk full" || l.Severity != "3" || l.App != "svc" ||
		at(l).Before(before.Truncate(time.Microsecond)) || at(l).After(logged) {
		t.Errorf("v2 record %+v: want severity 3, app svc, time between %v and %v (delivered at %v)",
			l, before.UTC(), logged.UTC(), delivered.UTC())
	}
	if l := got[1]; l.Msg != "plain" || l.Severity != "6" || l.App != "daemon" ||
		at(l).Before(delivered.Truncate(time.Microsecond)) || at(l).After(after) {
		t.Errorf("v1 record %+v: want severity 6, app daemon, its receive time, after %v", l, delivered.UTC())
	}
}

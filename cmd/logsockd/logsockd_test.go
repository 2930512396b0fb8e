//go:build unix

package main

// logsockd run as a real process: its output to a file as JSON and text,
// the file reopened on SIGHUP, SIGTERM under load, a standard output that
// closes, forwarding to a syslog server, and its command line.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/logsocktest"
	"github.com/logsock/logsock/internal/proctest"
	"github.com/logsock/logsock/internal/testenv"
)

// TestLogsockdOutputFile: records from TCP and a Unix socket, as JSON
// and as text, in a file that logsockd creates with mode 0640, while it
// runs (they are flushed within milliseconds, not at exit); each without
// its one trailing newline, with its remote address over TCP and the
// peer's credentials over a Unix socket; SIGUSR1's counters match the
// file.
func TestLogsockdOutputFile(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			sock := logsocktest.SocketPath(t)
			out := filepath.Join(filepath.Dir(sock), "out.log")
			args := []string{"-listen", "tcp://127.0.0.1:0", "-listen", "unix://" + sock, "-o", out}
			if format == "json" {
				args = append(args, "-json", "-json-msg")
			}
			p, addrs := startDaemon(t, args...)

			network, address := dialAddr(t, addrs[0])
			c := logsocktest.RawConn(t, network, address, logsocktest.Frames(logsock.LittleEndian, 4242,
				"started\n", `{"level":"INFO","n":1}`+"\n", "bad \xff", "two\n\n"))
			local := c.LocalAddr().String()
			waitFileLines(t, p, out, 4) // then the Unix connection is conn 2
			ls := dial(t, addrs[1], nil)
			if err := ls.Log("from unix\n"); err != nil {
				t.Fatal(err)
			}
			lines := waitFileLines(t, p, out, 5)

			if format == "json" {
				checkJSONLines(t, lines, local)
			} else {
				checkTextLines(t, lines, local)
			}
			if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o640 {
				t.Errorf("%s: %v, %v; want mode 0640", out, fi.Mode(), err)
			}

			p.Signal(t, syscall.SIGUSR1)
			stats := p.waitLine(t, "logsockd: output "+out+": ")
			size := 0
			for _, l := range lines {
				size += len(l) + 1
			}
			if counter(t, stats, "records") != 5 || counter(t, stats, "bytes") != size || counter(t, stats, "dropped") != 0 {
				t.Errorf("%s, want records=5 bytes=%d dropped=0", stats, size)
			}
			p.Signal(t, syscall.SIGTERM)
			p.MustExit(t)
		})
	}
}

func checkJSONLines(t *testing.T, lines []string, local string) {
	t.Helper()
	type line struct {
		Time      string
		Conn      uint64
		Pid       int
		Remote    *string
		PeerPid   int `json:"peer_pid"`
		WriterPid int `json:"writer_pid"`
		Flags     []string
		Msg       json.RawMessage
		MsgBase64 []byte `json:"msg_base64"`
	}
	var recs []line
	for _, l := range lines {
		var r line
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		if _, err := time.Parse(time.RFC3339Nano, r.Time); err != nil {
			t.Errorf("%s: time: %v", l, err)
		}
		recs = append(recs, r)
	}
	for i, want := range []string{`"started"`, `{"level":"INFO","n":1}`, `"bad \ufffd"`, `"two\n"`} {
		r := recs[i]
		if string(r.Msg) != want || r.Conn != 1 || r.Pid != 4242 || r.Remote == nil || *r.Remote != local {
			t.Errorf("line %d: %s; want conn 1, pid 4242, remote %s, msg %s", i, lines[i], local, want)
		}
	}
	if string(recs[2].MsgBase64) != "bad \xff" || len(recs[2].Flags) != 1 || recs[2].Flags[0] != "invalid_utf8" {
		t.Errorf("the invalid message: %s", lines[2])
	}
	u := recs[4]
	if string(u.Msg) != `"from unix"` || u.Remote != nil || u.Pid != os.Getpid() {
		t.Errorf("the Unix record: %s", lines[4])
	}
	if runtime.GOOS == "linux" && (u.PeerPid != os.Getpid() || u.WriterPid != os.Getpid()) {
		t.Errorf("the Unix record: %s; want peer_pid and writer_pid %d", lines[4], os.Getpid())
	}
}

func checkTextLines(t *testing.T, lines []string, local string) {
	t.Helper()
	const ts = `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z`
	tcp := ts + ` run=[0-9a-f]{16} conn=1 pid=4242 remote=` + regexp.QuoteMeta(local)
	unix := ts + fmt.Sprintf(` run=[0-9a-f]{16} conn=2 pid=%d`, os.Getpid())
	if runtime.GOOS == "linux" {
		unix += fmt.Sprintf(` peer=%d uid=%d gid=%d writer=%d`, os.Getpid(), os.Getuid(), os.Getgid(), os.Getpid())
	}
	for i, want := range []string{
		tcp + ` started`,
		tcp + ` \{"level":"INFO","n":1\}`,
		tcp + ` flags=invalid_utf8 bad \\xff`,
		tcp + ` two\\n`,
		unix + ` from unix`,
	} {
		if !regexp.MustCompile("^" + want + "$").MatchString(lines[i]) {
			t.Errorf("line %d: %q, want %q", i, lines[i], want)
		}
	}
}

// seqClient logs "NAME SEQ" messages from a goroutine through a batching
// LogSocket, and flushes after every 256: acked is the number of messages
// for which a Flush has returned nil. It pauses for pace after each Flush:
// a pace of 0 logs as fast as it can.
type seqClient struct {
	name   string
	pace   time.Duration
	ls     *logsock.LogSocket
	acked  atomic.Int64
	ctx    context.Context // done on halt: it ends a Flush in progress
	cancel context.CancelFunc
	done   chan struct{}
}

func startSeqClient(t *testing.T, name, printed string, pace time.Duration) *seqClient {
	t.Helper()
	network, address := dialAddr(t, printed)
	// DropNewest and short timeouts: once logsockd has gone, nothing
	// waits for it long.
	ls, err := logsock.Dial(network, address, &logsock.Config{Batching: true, Overflow: logsock.DropNewest,
		WriteTimeout: 100 * time.Millisecond, CloseTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c := &seqClient{name: name, pace: pace, ls: ls, done: make(chan struct{})}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	go c.run()
	t.Cleanup(func() { c.halt() })
	return c
}

func (c *seqClient) run() {
	defer close(c.done)
	for seq := 0; ; seq++ {
		if seq%256 == 0 {
			if c.ls.Flush(c.ctx) == nil {
				c.acked.Store(int64(seq))
			}
			if c.ctx.Err() != nil {
				return
			}
			if c.pace > 0 {
				time.Sleep(c.pace) // load, not synchronisation
			}
		}
		c.ls.Log(fmt.Sprintf("%s %d", c.name, seq)) // an error: a message the file lacks, or not acked
	}
}

// halt stops the client and closes its LogSocket; it returns Close's
// error. It may be called more than once.
func (c *seqClient) halt() error {
	if c.ctx.Err() != nil {
		return nil
	}
	c.cancel()
	<-c.done
	return c.ls.Close()
}

// waitAcked waits until c has n messages acked.
func (c *seqClient) waitAcked(t *testing.T, n int64) {
	t.Helper()
	for deadline := time.Now().Add(waitTimeout); c.acked.Load() < n; {
		if time.Now().After(deadline) {
			t.Fatalf("client %s: %d messages acked, want %d", c.name, c.acked.Load(), n)
		}
		time.Sleep(time.Millisecond) // the client's goroutine sets it, with no signal
	}
}

// TestLogsockdReopen: logrotate's way. Under a steady stream of records,
// the file is renamed and SIGHUP sent: the records that follow go to a new
// file at the path, and across the two files every record is there once,
// whole, in order.
func TestLogsockdReopen(t *testing.T) {
	t.Parallel()
	sock := logsocktest.SocketPath(t)
	out := filepath.Join(filepath.Dir(sock), "out.log")
	p, addrs := startDaemon(t, "-json", "-listen", "tcp://127.0.0.1:0", "-o", out)
	c := startSeqClient(t, "a", addrs[0], time.Millisecond) // about 250,000 a second

	waitFileLines(t, p, out, 1000)
	if err := os.Rename(out, out+".1"); err != nil {
		t.Fatal(err)
	}
	p.Signal(t, syscall.SIGHUP)
	waitFileLines(t, p, out, 1000) // in the new file
	if err := c.halt(); err != nil {
		t.Fatal(err)
	}
	end := p.waitLine(t, "logsockd: conn 1 (")
	m := regexp.MustCompile(`closed after (\d+) frames: eof$`).FindStringSubmatch(end)
	if m == nil {
		t.Fatalf("%q: want the connection's clean end", end)
	}
	sent, _ := strconv.Atoi(m[1])
	p.Signal(t, syscall.SIGTERM)
	p.MustExit(t)
	if n := counter(t, p.waitLine(t, "logsockd: output "), "reopens"); n != 1 {
		t.Errorf("reopens=%d, want 1", n)
	}

	before := seqLines(t, waitFileLines(t, p, out+".1", 1))["a"]
	after := seqLines(t, waitFileLines(t, p, out, 1))["a"]
	all := append(before, after...)
	if len(all) != sent {
		t.Errorf("%d + %d records in the two files, %d sent", len(before), len(after), sent)
	}
	for i, seq := range all {
		if seq != i {
			t.Fatalf("record %d of the two files is message %d (the first file has %d)", i, seq, len(before))
		}
	}
	t.Logf("%d records before the reopen, %d after", len(before), len(after))
}

// TestLogsockdSIGTERMUnderLoad: clients log as fast as they can, over TCP
// and a Unix socket, when SIGTERM comes. Every record whose Flush returned
// nil before the signal is in the file, and every record the Server
// delivered (its count at exit) was written: the file's lines are the
// output's records and the Server's frames. (A Flush that returns nil
// after the signal proves nothing: a frame written between the drain's
// last read and its close is lost with the connection, by design.)
func TestLogsockdSIGTERMUnderLoad(t *testing.T) {
	t.Parallel()
	sock := logsocktest.SocketPath(t)
	out := filepath.Join(filepath.Dir(sock), "out.log")
	p, addrs := startDaemon(t, "-json", "-listen", "tcp://127.0.0.1:0", "-listen", "unix://"+sock, "-o", out)
	var clients []*seqClient
	for i, name := range []string{"t1", "t2", "u1", "u2"} {
		clients = append(clients, startSeqClient(t, name, addrs[i/2], 0))
	}
	acked := map[string]int{}
	for _, c := range clients {
		c.waitAcked(t, 5000)
	}
	for _, c := range clients {
		acked[c.name] = int(c.acked.Load())
	}
	p.Signal(t, syscall.SIGTERM)
	p.MustExit(t)
	for _, c := range clients {
		c.halt() // its error: what was still held when logsockd had gone
	}

	lines := waitFileLines(t, p, out, 1)
	frames := counter(t, p.waitLine(t, "logsockd: server: "), "frames")
	outStats := p.waitLine(t, "logsockd: output ")
	if records := counter(t, outStats, "records"); records != len(lines) || frames != len(lines) || counter(t, outStats, "dropped") != 0 {
		t.Errorf("%d lines in the file; the Server delivered %d frames; %s", len(lines), frames, outStats)
	}
	seqs := seqLines(t, lines)
	total := 0
	for _, c := range clients {
		got := seqs[c.name]
		for i, seq := range got {
			if seq != i {
				t.Fatalf("client %s: record %d is message %d", c.name, i, seq)
			}
		}
		if len(got) < acked[c.name] {
			t.Errorf("client %s: %d records in the file, %d acked before SIGTERM", c.name, len(got), acked[c.name])
		}
		total += acked[c.name]
	}
	t.Logf("%d records acked before SIGTERM, %d in the file", total, len(lines))
}

// TestLogsockdClosedStdout: logsockd -json | head -1. After the reader has
// gone, a write fails with EPIPE: logsockd says so, drains its
// connections, removes its socket file and exits 1, not killed by
// SIGPIPE.
func TestLogsockdClosedStdout(t *testing.T) {
	t.Parallel()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	sock := logsocktest.SocketPath(t)
	p := &proc{proctest.StartWith(t, func(cmd *exec.Cmd) error {
		cmd.Stdout = w
		err := cmd.Start()
		w.Close()
		return err
	}, testenv.Program(t, "logsockd"), "-json", "-listen", "unix://"+sock)}
	addrs := p.listening(t, 1)
	// Its Close gives up at once on what logsockd did not take.
	ls := dial(t, addrs[0], &logsock.Config{CloseTimeout: time.Millisecond})
	if err := ls.Log("first"); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(r).ReadString('\n'); err != nil || !strings.Contains(line, `"msg":"first"`) {
		t.Fatalf("read %q, %v", line, err)
	}
	r.Close() // head -1 exits
	for i := 0; ; i++ {
		// Records until logsockd notices: the first write after the close.
		if err := ls.Log(fmt.Sprintf("after %d", i)); err != nil {
			t.Fatal(err)
		}
		select {
		case <-p.Done:
		case <-time.After(time.Millisecond):
			continue
		}
		break
	}
	var ee *exec.ExitError
	if !errors.As(p.Err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("logsockd: %v, want exit status 1; stderr:\n%s", p.Err, p.Stderr)
	}
	if want := "logsockd: output standard output: write /dev/stdout: broken pipe"; !strings.Contains(p.Stderr.String(), want) {
		t.Errorf("stderr %q, want %q", p.Stderr, want)
	}
	if end := p.waitLine(t, "logsockd: conn 1 ("); !strings.HasSuffix(end, ": shutdown") {
		t.Errorf("%q: want the connection drained", end)
	}
	if n := counter(t, p.waitLine(t, "logsockd: output standard output: records="), "dropped"); n == 0 {
		t.Error("dropped=0: the records after the close are not counted")
	}
	if _, err := os.Lstat(sock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s: %v, want it removed", sock, err)
	}
}

// TestLogsockdOutputFull: with -on-output-error exit, a file that takes
// no more (ENOSPC, /dev/full) ends logsockd with exit 1, after it has
// drained its connections into what can still be written: the forwarder
// gets every record, and the output counts each as dropped. (By default
// logsockd waits for space: TestLogsockdFullDisk.)
func TestLogsockdOutputFull(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skipf("/dev/full: %v", err)
	}
	t.Parallel()
	col := logsocktest.NewFakeCollector(t, "tcp", logsocktest.FakeSyslog)
	p, addrs := startDaemon(t, "-listen", "tcp://127.0.0.1:0", "-o", "/dev/full", "-on-output-error", "exit",
		"-forward", "syslog+tcp://"+col.Addr)
	network, address := dialAddr(t, addrs[0])
	logsocktest.RawConn(t, network, address, logsocktest.Frames(logsock.LittleEndian, 4242, "one", "two", "three"))
	p.MustFail(t, 1, "logsockd: output /dev/full: write /dev/full: no space left on device")
	col.WaitRecords(t, 3)
	out := p.waitLine(t, "logsockd: output /dev/full: records=")
	fwd := p.waitLine(t, "logsockd: forward ")
	if counter(t, out, "records") != 0 || counter(t, out, "dropped") != 3 || counter(t, fwd, "frames") != 3 {
		t.Errorf("%s\n%s\nwant 3 records dropped by the output, 3 forwarded", out, fwd)
	}
}

// TestLogsockdForward: with -forward alone, every record goes to a syslog
// server as RFC 5424 in octet-counted framing, and nothing to standard
// output.
func TestLogsockdForward(t *testing.T) {
	t.Parallel()
	col := logsocktest.NewFakeCollector(t, "tcp", logsocktest.FakeSyslog)
	sock := logsocktest.SocketPath(t)
	p, addrs := startDaemon(t, "-listen", "tcp://127.0.0.1:0", "-listen", "unix://"+sock,
		"-forward", "syslog+tcp://"+col.Addr, "-app-name", "test-app")
	network, address := dialAddr(t, addrs[0])
	c := logsocktest.RawConn(t, network, address, logsocktest.Frames(logsock.LittleEndian, 4242, "started\n", "bad \xff"))
	col.WaitRecords(t, 2) // then the Unix connection is conn 2
	ls := dial(t, addrs[1], nil)
	if err := ls.Log("from unix"); err != nil {
		t.Fatal(err)
	}
	recs := col.WaitRecords(t, 3)

	host, _ := os.Hostname()
	const ts = `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z`
	head := `<14>1 ` + ts + ` ` + regexp.QuoteMeta(host) + ` test-app `
	tcp := head + `4242 - \[logsock@32473 run="[0-9a-f]{16}" conn="1" pid="4242" remote="` + regexp.QuoteMeta(c.LocalAddr().String()) + `"`
	me := strconv.Itoa(os.Getpid())
	unix := head + me + ` - \[logsock@32473 run="[0-9a-f]{16}" conn="2" pid="` + me + `"`
	if runtime.GOOS == "linux" {
		unix += fmt.Sprintf(` peer_pid="%d" peer_uid="%d" peer_gid="%d" writer_pid="%d"`, os.Getpid(), os.Getuid(), os.Getgid(), os.Getpid())
	}
	// Connections are forwarded in no set order. The messages, with the
	// structured data's end, are compared as bytes: a regexp takes \xff
	// for U+00FF.
	for _, want := range []struct{ head, tail string }{
		{tcp, "] started\n"}, // the bytes unchanged, its newline too
		{tcp + ` flags="invalid_utf8"`, "] bad \xff"},
		{unix, "] from unix"},
	} {
		i := slices.IndexFunc(recs, func(r logsock.Record) bool { return bytes.HasSuffix(r.Msg, []byte(want.tail)) })
		if i < 0 {
			t.Errorf("no message forwarded ends with %q", want.tail)
			continue
		}
		got := string(recs[i].Msg)
		if !regexp.MustCompile("^" + want.head + "$").MatchString(strings.TrimSuffix(got, want.tail)) {
			t.Errorf("forwarded %q, want %q then %q", got, want.head, want.tail)
		}
	}

	p.Signal(t, syscall.SIGTERM)
	p.MustExit(t)
	if s := p.Stdout.String(); s != "" {
		t.Errorf("standard output %q, want nothing with -forward alone", s)
	}
	fwd := p.waitLine(t, "logsockd: forward "+col.Addr+": ")
	if counter(t, fwd, "frames") != 3 || counter(t, fwd, "dropped") != 0 {
		t.Errorf("%s: want frames=3 dropped=0", fwd)
	}
}

// TestLogsockdCommandLine: -h starts with a synopsis and an example; a
// stray argument or a bad value is a usage error (exit 2), a file that
// cannot be opened a failure (exit 1).
func TestLogsockdCommandLine(t *testing.T) {
	t.Parallel()
	bin := testenv.Program(t, "logsockd")
	help := proctest.Start(t, bin, "-h")
	help.MustExit(t)
	if s := help.Stderr.String(); !strings.HasPrefix(s, "usage: logsockd [flags]\n") || !strings.Contains(s, "\nexamples:\n  logsockd -listen") {
		t.Errorf("-h says %q", s)
	}
	dir := filepath.Dir(logsocktest.SocketPath(t))
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-json", "stray"}, 2, `logsockd: unexpected argument "stray"`},
		{[]string{"-forward", "tcp://relay:514"}, 2, "want syslog+tcp://HOST:PORT or syslog+tls://HOST:PORT"},
		{[]string{"-forward", "syslog+tcp://relay:514", "-app-name", "two words"}, 2, "RFC 5424 APP-NAME"},
		{[]string{"-forward", "syslog+tcp://relay:514", "-forward-ca", "ca.pem"}, 2, "go with -forward syslog+tls://HOST:PORT"},
		{[]string{"-forward", "syslog+tls://relay:514", "-forward-cert", "c.pem"}, 2, "-forward-cert and -forward-key go together"},
		{[]string{"-forward", "syslog+tls://relay:514", "-forward-ca", filepath.Join(dir, "missing.pem")}, 1, "no such file or directory"},
		{[]string{"-forward", "syslog+tcp://relay:514", "-forward-timeout", "0s"}, 2, "-forward-timeout 0s: want a positive duration"},
		{[]string{"-listen", "udp://127.0.0.1:1"}, 2, "want tcp, tcp4, tcp6 or unix (or tls://host:port)"},
		{[]string{"-listen", "tls://127.0.0.1"}, 2, `address "tls://127.0.0.1": want tls://host:port`},
		{[]string{"-listen", "tls://127.0.0.1:0"}, 2, "-listen tls:// needs -tls-cert and -tls-key"},
		{[]string{"-tls-cert", "c.pem", "-tls-key", "k.pem"}, 2, "go with a -listen tls:// address"},
		{[]string{"-listen", "tls://127.0.0.1:0", "-tls-cert", filepath.Join(dir, "c.pem"), "-tls-key", filepath.Join(dir, "k.pem")}, 1, "no such file or directory"},
		{[]string{"-max-frame", "-1"}, 2, "-max-frame -1: want a positive number of bytes"},
		{[]string{"-on-output-error", "retry"}, 2, `"retry": want wait or exit`},
		{[]string{"-o", filepath.Join(dir, "missing", "out.log")}, 1, "no such file or directory"},
	} {
		proctest.Start(t, bin, tc.args...).MustFail(t, tc.code, tc.want)
	}
}

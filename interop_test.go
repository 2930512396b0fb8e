//go:build unix

package logsock_test

// Interoperability with the article's programs: its Python client
// (testdata/article_client.py, a faithful copy, bugs included), a Python
// reading of its C# server (testdata/article_server.py, written from the
// wire format alone), and the example programs built as real binaries.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/logsocktest"
	"github.com/logsock/logsock/internal/proctest"
	"github.com/logsock/logsock/internal/testenv"
)

const (
	// childTimeout bounds the life of a child process that a test runs to
	// its end (CombinedOutput, Wait): its context kills it after that.
	// Those that start and stop live as long as their test.
	childTimeout = 30 * time.Second
	// waitTimeout bounds each wait for a child's output or exit.
	waitTimeout = 20 * time.Second
)

// nonASCII mixes 2-, 3- and 4-byte UTF-8: 10 code points, 25 bytes.
const nonASCII = "로그 메시지 ✓ 𝄞"

// testdata returns the absolute path of a file in testdata.
func testdata(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// articleClientArgs returns the command line of the article's client
// logging msgs to a Server listening on network at addr.
func articleClientArgs(t *testing.T, network, addr string, msgs []string) []string {
	t.Helper()
	args := []string{testdata(t, "article_client.py")}
	if network == "unix" {
		args = append(args, "--unix", addr)
	} else {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		args = append(args, host, port)
	}
	return append(args, msgs...)
}

// checkRecords checks that recs are msgs, in order, on one connection
// whose handshake named pid.
func checkRecords(t *testing.T, recs []logsock.Record, pid int, msgs []string) {
	t.Helper()
	if len(recs) != len(msgs) {
		t.Errorf("got %d records, want %d", len(recs), len(msgs))
	}
	for i, r := range recs {
		if int(r.Pid) != pid {
			t.Errorf("record %d: pid %d, want the Python process's %d", i, r.Pid, pid)
		}
		if r.Conn != recs[0].Conn {
			t.Errorf("record %d: conn %d, want %d", i, r.Conn, recs[0].Conn)
		}
		if i < len(msgs) && string(r.Msg) != msgs[i] {
			t.Errorf("record %d: msg %q, want %q", i, r.Msg, msgs[i])
		}
	}
}

func TestInteropArticleClientToServer(t *testing.T) {
	py := testenv.Python(t)

	for _, network := range []string{"tcp", "unix"} {
		t.Run("ascii/"+network, func(t *testing.T) {
			s := logsocktest.NewSink()
			addr := logsocktest.Serve(t, network, s.Server())
			// The article's server output, and an empty message.
			msgs := []string{"current pid: 17120", "current pid: 17121", ""}
			p := proctest.Start(t, py, articleClientArgs(t, network, addr, msgs)...)
			p.MustExit(t)

			// ConnClosed runs after the connection's last Handler call.
			if ends := s.WaitEnds(t, 1); ends[0] != nil {
				t.Errorf("connection ended with %v, want a clean end", ends[0])
			}
			checkRecords(t, s.WaitRecords(t, 0), p.Pid(), msgs)
		})
	}

	msgs := []string{"before", nonASCII, "é", "after"}

	t.Run("non-ascii/codepoints", func(t *testing.T) {
		s := logsocktest.NewSink()
		srv := s.Server()
		srv.CodePoints = true
		addr := logsocktest.Serve(t, "tcp", srv)
		p := proctest.Start(t, py, articleClientArgs(t, "tcp", addr, msgs)...)
		p.MustExit(t)

		if ends := s.WaitEnds(t, 1); ends[0] != nil {
			t.Errorf("connection ended with %v, want a clean end", ends[0])
		}
		checkRecords(t, s.WaitRecords(t, 0), p.Pid(), msgs)
	})

	t.Run("non-ascii/bytes", func(t *testing.T) {
		// The article's client sends len(text), a count of code points,
		// then the UTF-8 bytes. For nonASCII that is a header of 10 and
		// 25 bytes: a byte-counting reader takes the first 10 bytes
		// ("로그 메") as the message and reads the next 4 ("시" and the
		// lead byte of "지", all >= 0x80) as a frame header, a negative
		// int32, so the Server closes the connection and "é" and
		// "after" are lost. This is why Server.CodePoints exists.
		s := logsocktest.NewSink()
		addr := logsocktest.Serve(t, "tcp", s.Server())
		p := proctest.Start(t, py, articleClientArgs(t, "tcp", addr, msgs)...)

		ends := s.WaitEnds(t, 1)
		// The client may or may not finish its sends before the Server
		// closes (then it fails with EPIPE or ECONNRESET): either is fine.
		if err := p.Wait(t); err != nil {
			t.Logf("article client: %v: %s", err, strings.TrimSpace(p.Stderr.String()))
		}

		n := utf8.RuneCountInString(nonASCII)
		checkRecords(t, s.WaitRecords(t, 0), p.Pid(), []string{msgs[0], nonASCII[:n]})
		var pe *logsock.ProtocolError
		if !errors.As(ends[0], &pe) || !errors.Is(ends[0], logsock.ErrNegativeLength) {
			t.Fatalf("connection ended with %v, want a *ProtocolError wrapping ErrNegativeLength", ends[0])
		}
		if want := []byte(nonASCII[n : n+logsock.HeaderLen]); pe.Part != "frame header" || !bytes.Equal(pe.Data, want) {
			t.Errorf("ProtocolError %s %q, want frame header %q (the middle of the text)", pe.Part, pe.Data, want)
		}
		t.Logf("byte mode, as expected: %v", ends[0])
	})
}

// serverRecord is one line of article_server.py's output.
type serverRecord struct {
	Pid *int64  `json:"pid"`
	Msg *string `json:"msg"`
}

// startArticleServer runs article_server.py with args and returns it with
// the network and address it listens on.
func startArticleServer(t *testing.T, args ...string) (p *proctest.Proc, network, addr string) {
	t.Helper()
	p = proctest.Start(t, testenv.Python(t), append([]string{testdata(t, "article_server.py")}, args...)...)
	first := p.WaitStdout(t, 1)[0]
	if port, ok := strings.CutPrefix(first, "port "); ok {
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			t.Fatalf("article server: first line %q: %v", first, err)
		}
		return p, "tcp", net.JoinHostPort("127.0.0.1", port)
	}
	if path, ok := strings.CutPrefix(first, "unix "); ok {
		return p, "unix", path
	}
	t.Fatalf("article server: first line %q, want \"port N\" or \"unix PATH\"", first)
	return nil, "", ""
}

// serverRecords parses the records that article_server.py printed after
// its first line.
func serverRecords(t *testing.T, p *proctest.Proc) []serverRecord {
	t.Helper()
	var recs []serverRecord
	for i, line := range p.Stdout.Lines()[1:] {
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		var r serverRecord
		if err := dec.Decode(&r); err != nil || r.Pid == nil || r.Msg == nil {
			t.Fatalf("article server line %d: %q: want {\"pid\": N, \"msg\": S} (%v)", i+1, line, err)
		}
		recs = append(recs, r)
	}
	return recs
}

func TestInteropGoClientToArticleServer(t *testing.T) {
	testenv.Python(t)
	msgs := []string{
		fmt.Sprintf("current pid: %d", os.Getpid()),
		nonASCII,
		"",
		"é",
		strings.Repeat("가", 30000), // 90 000 bytes: several reads on the server
		"after",
	}

	for _, tc := range []struct {
		name string
		args []string
		cfg  *logsock.Config
	}{
		{name: "little", args: []string{"--order", "little"}}, // nil Config: the default order
		{name: "big", args: []string{"--order", "big"}, cfg: &logsock.Config{Order: logsock.BigEndian}},
		{name: "little/unix", args: []string{"--unix", logsocktest.SocketPath(t)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, network, addr := startArticleServer(t, tc.args...)
			ls, err := logsock.Dial(network, addr, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range msgs {
				if err := ls.Log(m); err != nil {
					t.Fatalf("Log(%.20q): %v", m, err)
				}
			}
			if err := ls.Close(); err != nil {
				t.Fatal(err)
			}
			p.MustExit(t) // it exits 0 only at a clean end at a frame boundary

			recs := serverRecords(t, p)
			var got []string
			for i, r := range recs {
				if *r.Pid != int64(os.Getpid()) {
					t.Errorf("record %d: pid %d, want %d", i, *r.Pid, os.Getpid())
				}
				got = append(got, *r.Msg)
			}
			if !slices.Equal(got, msgs) {
				t.Errorf("article server read %d messages %.40q, want %d %.40q", len(got), got, len(msgs), msgs)
			}
		})
	}

	// The reference server must tell a clean end from a truncated frame,
	// or its exit status above would prove nothing.
	t.Run("truncated", func(t *testing.T) {
		p, network, addr := startArticleServer(t)
		c, err := net.Dial(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		b := logsock.AppendHandshake(nil, logsock.LittleEndian, 42)
		b = logsock.AppendFrame(b, logsock.LittleEndian, []byte("whole"))
		b = logsock.AppendFrame(b, logsock.LittleEndian, []byte("cut short"))
		if _, err := c.Write(b[:len(b)-3]); err != nil {
			t.Fatal(err)
		}
		c.Close()
		var ee *exec.ExitError
		if err := p.Wait(t); !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("article server: %v, want exit status 1", err)
		}
		if !strings.Contains(p.Stderr.String(), "truncated") {
			t.Errorf("article server stderr %q, want it to say truncated", p.Stderr)
		}
		if recs := serverRecords(t, p); len(recs) != 1 || *recs[0].Pid != 42 || *recs[0].Msg != "whole" {
			t.Errorf("article server records %+v, want only pid 42 \"whole\"", recs)
		}
	})
}

// startCollector runs the collector program, logsockd, with -json
// -codepoints on listen, and returns it with the address that it says it
// listens on.
func startCollector(t *testing.T, listen string) (*proctest.Proc, string) {
	t.Helper()
	p, addrs := startLogsockd(t, (*exec.Cmd).Start, "-json", "-codepoints", "-listen", listen)
	return p, addrs[0]
}

// waitConnClosed waits for the collector's line about the end of its
// connection 1 and checks that want matches all of it: the collector logs
// it after the connection's last record, so a wrong count or an error
// fails at once, not after a wait for records that will never come.
func waitConnClosed(t *testing.T, p *proctest.Proc, want *regexp.Regexp) {
	t.Helper()
	const prefix = "logsockd: conn 1 ("
	lines := p.WaitLines(t, p.Stderr, "the end of conn 1", func(lines []string) bool {
		return slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, prefix) })
	})
	i := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, prefix) })
	if !want.MatchString(lines[i]) {
		t.Fatalf("collector: %q, want %q; stdout:\n%s", lines[i], want, p.Stdout)
	}
}

// stopCollector sends SIGINT to the collector and checks that it exits 0.
func stopCollector(t *testing.T, p *proctest.Proc) {
	t.Helper()
	if err := p.Cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	p.MustExit(t)
}

// collectorRecord is one line of the collector's -json output.
type collectorRecord struct {
	Conn uint64
	Pid  int
	Msg  string
}

// collectorRecords waits for n JSON lines from the collector and parses
// them, checking that each has the keys conn, pid, msg and time.
func collectorRecords(t *testing.T, p *proctest.Proc, n int, since time.Time) []collectorRecord {
	t.Helper()
	var recs []collectorRecord
	for i, line := range p.WaitStdout(t, n) {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal([]byte(line), &fields); err != nil {
			t.Fatalf("collector line %d: %q: %v", i+1, line, err)
		}
		for _, k := range []string{"conn", "pid", "msg", "time"} {
			if _, ok := fields[k]; !ok {
				t.Errorf("collector line %d: %s: no key %q", i+1, line, k)
			}
		}
		var raw struct {
			Conn uint64 `json:"conn"`
			Pid  int    `json:"pid"`
			Msg  string `json:"msg"`
			Time string `json:"time"`
		}
		if err := json.Unmarshal([]byte(line), &raw); err != nil {
			t.Fatalf("collector line %d: %q: %v", i+1, line, err)
		}
		ts, err := time.Parse(time.RFC3339Nano, raw.Time)
		if err != nil {
			t.Errorf("collector line %d: time: %v", i+1, err)
		} else if ts.Before(since.Add(-time.Minute)) || ts.After(time.Now().Add(time.Minute)) {
			t.Errorf("collector line %d: time %s, want about now", i+1, raw.Time)
		}
		recs = append(recs, collectorRecord{Conn: raw.Conn, Pid: raw.Pid, Msg: raw.Msg})
	}
	return recs
}

func TestInteropArticleClientToCollectorProgram(t *testing.T) {
	t.Run("article-client/tcp", func(t *testing.T) {
		py := testenv.Python(t)
		started := time.Now()
		p, addr := startCollector(t, "tcp://127.0.0.1:0")
		port, ok := strings.CutPrefix(addr, "tcp://127.0.0.1:")
		if _, err := strconv.ParseUint(port, 10, 16); !ok || err != nil {
			t.Fatalf("collector listens on %q, want tcp://127.0.0.1:PORT", addr)
		}

		msgs := []string{"current pid: 17120", nonASCII, "", "é", "after"}
		client := proctest.Start(t, py, articleClientArgs(t, "tcp", "127.0.0.1:"+port, msgs)...)
		client.MustExit(t)
		// The remote address is the client's: a port of 127.0.0.1.
		waitConnClosed(t, p, regexp.MustCompile(fmt.Sprintf(`^logsockd: conn 1 \(pid %d from 127\.0\.0\.1:\d+\) closed after %d frames: eof$`,
			client.Pid(), len(msgs))))

		recs := collectorRecords(t, p, len(msgs), started)
		for i, r := range recs {
			if r.Conn != 1 || r.Pid != client.Pid() {
				t.Errorf("record %d: conn %d pid %d, want conn 1 pid %d", i, r.Conn, r.Pid, client.Pid())
			}
			if r.Msg != msgs[i] {
				t.Errorf("record %d: msg %q, want %q", i, r.Msg, msgs[i])
			}
		}

		stopCollector(t, p)
		if n := len(p.Stdout.Lines()); n != len(msgs) {
			t.Errorf("collector printed %d records, want %d:\n%s", n, len(msgs), p.Stdout)
		}
	})

	t.Run("example-client/unix", func(t *testing.T) {
		started := time.Now()
		path := logsocktest.SocketPath(t)
		p, addr := startCollector(t, "unix://"+path)
		if addr != "unix://"+path {
			t.Fatalf("collector listens on %q, want %q", addr, "unix://"+path)
		}

		client := proctest.Start(t, testenv.Program(t, "client"), "-count", "3", "-interval", "1ms", "-addr", addr)
		client.MustExit(t)
		waitConnClosed(t, p, regexp.MustCompile(fmt.Sprintf(`^logsockd: conn 1 \(pid %d\) closed after 3 frames: eof$`, client.Pid())))

		recs := collectorRecords(t, p, 3, started)
		want := fmt.Sprintf("current pid: %d", client.Pid())
		for i, r := range recs {
			if r.Pid != client.Pid() || r.Msg != want {
				t.Errorf("record %d: pid %d msg %q, want pid %d msg %q", i, r.Pid, r.Msg, client.Pid(), want)
			}
		}
		stopCollector(t, p)
		if n := len(p.Stdout.Lines()); n != 3 {
			t.Errorf("collector printed %d records, want 3:\n%s", n, p.Stdout)
		}
	})
}

//go:build unix

package main

// The article's Python client, and examples/client, log into logsockd.

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logsock/logsock/internal/logsocktest"
	"github.com/logsock/logsock/internal/proctest"
	"github.com/logsock/logsock/internal/testenv"
)

// startCollector runs the collector program, logsockd, with -json
// -codepoints on listen, and returns it with the address that it says it
// listens on.
func startCollector(t *testing.T, listen string) (*proc, string) {
	t.Helper()
	p, addrs := startDaemon(t, "-json", "-codepoints", "-listen", listen)
	return p, addrs[0]
}

// waitConnClosed waits for the collector's line about the end of its
// connection 1 and checks that want matches all of it: the collector logs
// it after the connection's last record, so a wrong count or an error
// fails at once, not after a wait for records that will never come.
func waitConnClosed(t *testing.T, p *proc, want *regexp.Regexp) {
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
func stopCollector(t *testing.T, p *proc) {
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
func collectorRecords(t *testing.T, p *proc, n int, since time.Time) []collectorRecord {
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

		msgs := []string{"current pid: 17120", logsocktest.NonASCII, "", "é", "after"}
		client := proctest.Start(t, py, logsocktest.ArticleClientArgs(t, "tcp", "127.0.0.1:"+port, msgs)...)
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

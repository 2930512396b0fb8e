//go:build unix

package main

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestLogsockdRunIDs: two runs of logsockd append to one file, JSON and
// text; each numbers its connections from 1, and each record carries its
// run's id, which logsockd logs at start: the two "conn 1" differ by it
// (issue 20).
func TestLogsockdRunIDs(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(shortDir(t), "out.log")
			args := []string{"-listen", "tcp://127.0.0.1:0", "-o", out}
			if format == "json" {
				args = append(args, "-json")
			}
			logged := regexp.MustCompile(`^logsockd: run ([0-9a-f]{16}): `)
			var runs []string
			var lines []string
			for i, msg := range []string{"first run", "second run"} {
				d, addrs := startDaemon(t, args...)
				m := logged.FindStringSubmatch(d.waitLine(t, "logsockd: run "))
				if m == nil {
					t.Fatalf("no run id logged: %s", d.Stderr)
				}
				runs = append(runs, m[1])
				if err := dial(t, addrs[0], nil).Log(msg); err != nil {
					t.Fatal(err)
				}
				lines = waitFileLines(t, d, out, i+1)
				d.sigterm(t, 0)
			}
			if runs[0] == runs[1] {
				t.Fatalf("both runs have the id %s", runs[0])
			}
			for i, line := range lines {
				var run string
				var conn uint64
				if format == "json" {
					var rec struct {
						Run  string
						Conn uint64
					}
					if err := json.Unmarshal([]byte(line), &rec); err != nil {
						t.Fatalf("%s: %v", line, err)
					}
					run, conn = rec.Run, rec.Conn
				} else if m := regexp.MustCompile(` run=(\S+) conn=(\d+) `).FindStringSubmatch(line); m != nil {
					run = m[1]
					json.Unmarshal([]byte(m[2]), &conn)
				}
				if run != runs[i] || conn != 1 {
					t.Errorf("line %d: %q; want run %s, conn 1", i, line, runs[i])
				}
			}
		})
	}
}

// TestForwardRunID: a forwarded record's structured data carries the
// run's id before the connection's.
func TestForwardRunID(t *testing.T) {
	f := newForwarder("relay:514", "web-1", "logsockd", nil)
	f.run = "0123456789abcdef"
	got := string(f.append(nil, tcpRecord("started")))
	if want := ` - [logsock@32473 run="0123456789abcdef" conn="7" pid="6530" remote="10.0.0.2:54321"] started`; !strings.HasSuffix(got, want) {
		t.Errorf("forwarded %q, want it to end with %q", got, want)
	}
}

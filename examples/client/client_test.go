//go:build unix

package main

// examples/client must start before the collector.

import (
	"slices"
	"strconv"
	"testing"

	"github.com/logsock/logsock/internal/logsocktest"
	"github.com/logsock/logsock/internal/proctest"
	"github.com/logsock/logsock/internal/testenv"
)

// TestExampleClientBeforeCollector: examples/client starts while no
// collector listens (it uses New, not Dial), says that it holds its
// messages, and delivers them all once the collector is up.
func TestExampleClientBeforeCollector(t *testing.T) {
	t.Parallel()
	col := logsocktest.FakeDown(t, "unix", logsocktest.FakeDecode)
	p := proctest.Start(t, testenv.Program(t, "client"), "-addr", "unix://"+col.Addr, "-count", "3", "-interval", "1ms")
	p.WaitLines(t, p.Stderr, "the notice that messages are held", func(lines []string) bool {
		return slices.ContainsFunc(lines, func(l string) bool {
			return l == "client: cannot reach the collector at unix://"+col.Addr+": holding the messages until it is up"
		})
	})
	col.Start(t)
	p.MustExit(t)
	col.WaitConnEnd(t, 1)
	recs := col.WaitRecords(t, 0)
	want := "current pid: " + strconv.Itoa(p.Pid())
	if len(recs) != 3 {
		t.Errorf("%d records, want 3:\n%s", len(recs), logsocktest.FormatRecords(recs))
	}
	for _, r := range recs {
		if r.Conn != 1 || int(r.Pid) != p.Pid() || string(r.Msg) != want {
			t.Errorf("record conn %d pid %d %q, want conn 1 pid %d %q", r.Conn, r.Pid, r.Msg, p.Pid(), want)
		}
	}
}

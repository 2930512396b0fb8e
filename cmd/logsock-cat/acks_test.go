//go:build unix

package main

// logsock-cat -acks (protocol v2, issue 19), run as a real process
// against a logsock.Server: levels and tags, the lines of a collector
// that stops mid-stream, and an exit status that says whether every line
// was acknowledged.

import (
	"bytes"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/logsocktest"
	"github.com/logsock/logsock/internal/proctest"
	"github.com/logsock/logsock/internal/testenv"
)

// serveUntilEnd runs srv on l until the test ends (Close).
func serveUntilEnd(t *testing.T, srv *logsock.Server, l net.Listener) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	logsocktest.WaitServing(t, l)
}

// sinkOn serves a Sink on a new Unix socket until the test ends, and
// returns it with the -addr flag of the socket.
func sinkOn(t *testing.T, configure func(*logsock.Server)) (*logsocktest.Sink, string) {
	t.Helper()
	s := logsocktest.NewSink()
	srv := s.Server()
	if configure != nil {
		configure(srv)
	}
	l := logsocktest.Listen(t, "unix")
	serveUntilEnd(t, srv, l)
	return s, "unix://" + l.Addr().String()
}

// TestLogsockCatAcks: with -acks, each line reaches the collector with its
// -tag (by default the command's name, or logsock-cat), its level (-level,
// and -stderr-level for a command's standard error, by default -level's),
// a number and a time; logsock-cat exits 0, saying nothing.
func TestLogsockCatAcks(t *testing.T) {
	t.Parallel()
	script := "echo out1; echo err1 >&2; echo out2"
	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
		tag   string
		want  map[string]logsock.Level
	}{
		{"command", "", []string{"-tag", "svc", "-level", "notice", "-stderr-level", "err", "--", "sh", "-c", script}, "svc",
			map[string]logsock.Level{"out1": logsock.LevelNotice, "err1": logsock.LevelError, "out2": logsock.LevelNotice}},
		{"command-defaults", "", []string{"--", "/bin/sh", "-c", script}, "sh",
			map[string]logsock.Level{"out1": logsock.LevelInfo, "err1": logsock.LevelInfo, "out2": logsock.LevelInfo}},
		{"stderr-as-level", "", []string{"-level", "warning", "--", "sh", "-c", script}, "sh",
			map[string]logsock.Level{"out1": logsock.LevelWarning, "err1": logsock.LevelWarning, "out2": logsock.LevelWarning}},
		{"stdin", "a\nb\n", []string{"-level", "debug"}, "logsock-cat",
			map[string]logsock.Level{"a": logsock.LevelDebug, "b": logsock.LevelDebug}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, addr := sinkOn(t, nil)
			start := time.Now()
			p := startCat(t, strings.NewReader(tc.stdin), append([]string{"-addr", addr, "-acks"}, tc.args...)...)
			catExit(t, p, 0)
			if e := p.Stderr.String(); e != "" {
				t.Errorf("stderr %q, want nothing", e)
			}
			recs := s.WaitAllEnded(t)
			if len(recs) != len(tc.want) {
				t.Fatalf("got %d records, want %d:\n%s", len(recs), len(tc.want), logsocktest.FormatRecords(recs))
			}
			seqs := map[uint64]bool{}
			for _, r := range recs {
				level, ok := tc.want[string(r.Msg)]
				if !ok || r.Level != level || r.Tag != tc.tag || int(r.Pid) != p.Pid() ||
					r.Session == (logsock.SessionID{}) || r.Seq == 0 || seqs[r.Seq] ||
					r.Logged.Before(start) || r.Logged.After(r.Time) {
					t.Errorf("record %q: level %v tag %q pid %d session %v seq %d logged %v (received %v); want level %v tag %q pid %d, a session, a new seq, logged since %v",
						r.Msg, r.Level, r.Tag, r.Pid, r.Session, r.Seq, r.Logged, r.Time, level, tc.tag, p.Pid(), start)
				}
				seqs[r.Seq] = true
			}
		})
	}
}

// TestLogsockCatAcksCommandLine: -tag, -level and -stderr-level are
// protocol v2's: without -acks they are refused, exit status 2; so is a
// level that is not one.
func TestLogsockCatAcksCommandLine(t *testing.T) {
	t.Parallel()
	bin := testenv.Program(t, "logsock-cat")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-tag", "svc"}, "logsock-cat: -tag: protocol v2's: give -acks too"},
		{[]string{"-level", "err", "--", "true"}, "logsock-cat: -level: protocol v2's: give -acks too"},
		{[]string{"-stderr-level", "err"}, "logsock-cat: -stderr-level: protocol v2's: give -acks too"},
		{[]string{"-acks", "-level", "loud"}, `level "loud"`},
		{[]string{"-acks", "-tag", "two words"}, `logsock-cat: -tag "two words": want 1-48 printable US-ASCII characters, no space`},
		{[]string{"-acks", "-tag", strings.Repeat("x", 49)}, "want 1-48 printable"},
	} {
		proctest.Start(t, bin, tc.args...).MustFail(t, 2, tc.want)
	}
}

// TestLogsockCatAcksCollectorStopped: with -acks, the collector is closed
// (connections cut, acknowledgements lost) while logsock-cat sends, and
// another starts on the same address: every line arrives, one that came
// twice with the same session and seq, and logsock-cat exits 0.
func TestLogsockCatAcksCollectorStopped(t *testing.T) {
	t.Parallel()
	const total = 20000
	s := logsocktest.NewSink()
	l := logsocktest.Listen(t, "unix")
	path := l.Addr().String()
	first := s.Server()
	serveUntilEnd(t, first, l)
	in, w := catPipe(t)
	p := startCat(t, in, "-addr", "unix://"+path, "-acks", "-timeout", "30s")
	var b bytes.Buffer
	for i := range total {
		fmt.Fprintf(&b, "m%d\n", i)
	}
	fed := make(chan error, 1)
	go func() {
		_, err := w.Write(b.Bytes())
		fed <- err
	}()
	s.WaitRecords(t, total/10)
	first.Close()
	l2, err := net.Listen("unix", path) // Close removed the socket's file
	if err != nil {
		t.Fatal(err)
	}
	serveUntilEnd(t, s.Server(), l2)
	if err := <-fed; err != nil {
		t.Fatal(err)
	}
	w.Close()
	catExit(t, p, 0)

	byMsg := map[string]logsock.Record{}
	dups := 0
	for _, r := range s.Records() {
		if prev, ok := byMsg[string(r.Msg)]; ok {
			dups++
			if prev.Seq != r.Seq || prev.Session != r.Session || !prev.Logged.Equal(r.Logged) {
				t.Errorf("%q came twice, differently: seq %d and %d, session %v and %v, logged %v and %v",
					r.Msg, prev.Seq, r.Seq, prev.Session, r.Session, prev.Logged, r.Logged)
			}
		}
		byMsg[string(r.Msg)] = r
	}
	for i := range total {
		if r, ok := byMsg[fmt.Sprintf("m%d", i)]; !ok || r.Seq != uint64(i+1) {
			t.Fatalf("line m%d: %v seq %d, want it, seq %d", i, ok, r.Seq, i+1)
		}
	}
	t.Logf("%d lines, %d of them again", total, dups)
}

// TestLogsockCatAcksUnacknowledged: lines that the collector takes and
// never acknowledges are not delivered: logsock-cat says so after
// -timeout and exits 1 (or with the command's status, if it failed).
func TestLogsockCatAcksUnacknowledged(t *testing.T) {
	t.Parallel()
	for _, tc := range undeliveredCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, addr := sinkOn(t, func(srv *logsock.Server) {
				handle := srv.Handler
				srv.Handler = func(rec *logsock.Record) {
					rec.Defer() // and never Done
					handle(rec)
				}
			})
			p := startCat(t, strings.NewReader(tc.stdin), append([]string{"-addr", addr, "-acks", "-timeout", "300ms"}, tc.command...)...)
			catExit(t, p, tc.code)
			// Counted once each: a frame written and not acknowledged
			// was said "2 of 4" (Stats.Frames counts it, and Dropped).
			want := fmt.Sprintf("logsock-cat: %d of %d frames not delivered to %s: %v", tc.frames, tc.frames, addr, logsock.ErrUndelivered)
			if !strings.Contains(p.Stderr.String(), want) {
				t.Errorf("stderr %q, want %q", p.Stderr, want)
			}
			if recs := s.WaitRecords(t, 1); !slices.ContainsFunc(recs, func(r logsock.Record) bool { return string(r.Msg) == "one" }) {
				t.Errorf("records:\n%s\nwant %q among them: it arrived, unacknowledged", logsocktest.FormatRecords(recs), "one")
			}
		})
	}
}

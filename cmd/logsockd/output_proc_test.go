//go:build unix

package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logsock/logsock"
)

// TestLogsockdKilled: 20 SIGKILLs of logsockd while a batching client
// sends as fast as it can, each followed by a new logsockd on the same
// file, which began with a fragment that an earlier crash left. Every
// line of the file parses (jq), each run's records are a gapless prefix
// of what its client sent, and every torn last line (the fragment, and
// any that a kill cut) is in FILE.torn, one a line, each said on stderr.
func TestLogsockdKilled(t *testing.T) {
	t.Parallel()
	const kills = 20
	out := filepath.Join(shortDir(t), "out.jsonl")
	const fragment = `{"time":"2026-01-01T00:00:00Z","conn":1,"pid":1,"msg":"cut sh`
	if err := os.WriteFile(out, []byte(fragment), 0o640); err != nil {
		t.Fatal(err)
	}
	cfg := &logsock.Config{Batching: true, WriteTimeout: waitTimeout, CloseTimeout: time.Millisecond}
	args := []string{"-json", "-listen", "tcp://127.0.0.1:0", "-o", out}
	setAside := 0
	for i := range kills {
		p, addr := startLogsockd(t, args...)
		setAside += len(p.matching("set aside a torn last line"))
		size := fileSize(t, out)
		s := startSender(t, fmt.Sprint("k", i), dial(t, addr, cfg), 0, 0)
		// From 256 KiB to 2.5 MiB more, so that the kills come at
		// different points of the writes.
		grow := int64(256<<10) * int64(1+i%10)
		waitFor(t, p, "records written", func() bool { return fileSize(t, out) >= size+grow })
		p.Cmd.Process.Kill()
		p.exitCode(t)
		s.halt()
	}
	p, _ := startLogsockd(t, args...)
	setAside += len(p.matching("set aside a torn last line"))
	p.sigterm(t, 0)

	lines := jqLines(t, out)
	seqs := seqMsgs(t, out)
	total := 0
	for i := range kills {
		name := fmt.Sprint("k", i)
		got := seqs[name]
		if len(got) == 0 {
			t.Fatalf("run %d: no records", i)
		}
		checkRun(t, "run "+name, got, 0, len(got)-1)
		total += len(got)
	}
	if total != lines {
		t.Errorf("%d lines, %d of them the runs' records", lines, total)
	}
	torn, err := os.ReadFile(out + tornSuffix)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(torn, []byte{'\n'}); n != setAside || !strings.HasPrefix(string(torn), fragment+"\n") {
		t.Errorf("%s: %d lines, %d set aside; want the fragment first:\n%.300s", out+tornSuffix, n, setAside, torn)
	}
	t.Logf("%d lines; %d torn last lines set aside (the planted one included)", lines, setAside)
}

// TestLogsockdFileGone: the output file is deleted, or renamed, with no
// SIGHUP, while a client sends. logsockd notices it within a second (a
// generous ceiling of 5 s here), says so, and writes to a new file at the
// path. Deleted: what it wrote into the deleted file after its last look
// is copied over, so that the new file holds every record from before
// the deletion on. Renamed: the two files hold every record once.
func TestLogsockdFileGone(t *testing.T) {
	for _, how := range []string{"deleted", "renamed"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(shortDir(t), "out.jsonl")
			p, addr := startLogsockd(t, "-json", "-listen", "tcp://127.0.0.1:0", "-o", out)
			s := startSender(t, "a", dial(t, addr, &logsock.Config{Batching: true, WriteTimeout: waitTimeout}), 0, time.Millisecond)
			waitFor(t, p, "1000 records", func() bool { return fileSize(t, out) > 1000*150 })

			before := int(s.logged.Load()) // message before was logged after the change
			start := time.Now()
			var err error
			if how == "deleted" {
				err = os.Remove(out)
			} else {
				err = os.Rename(out, out+".1")
			}
			if err != nil {
				t.Fatal(err)
			}
			p.waitLine(t, "the file was "+map[string]string{"deleted": "deleted", "renamed": "renamed or replaced"}[how]+": reopened")
			noticed := time.Since(start)
			if noticed > 5*time.Second {
				t.Errorf("noticed after %v", noticed)
			}
			waitFor(t, p, "records in the new file", func() bool { return fileSize(t, out) > 1000*150 })
			s.halt()
			p.sigterm(t, 0)
			if f := s.failed.Load(); f != 0 {
				t.Fatalf("%d Log calls failed", f)
			}
			sent := int(s.logged.Load())

			after := seqMsgs(t, out)["a"]
			if how == "deleted" {
				if len(after) == 0 || after[0] > before {
					t.Fatalf("the new file's records: %s; want from %d or before (logged after the deletion) to %d", span(after), before, sent-1)
				}
				checkRun(t, "the new file", after, after[0], sent-1)
			} else {
				all := append(seqMsgs(t, out+".1")["a"], after...)
				checkRun(t, "the two files", all, 0, sent-1)
			}
			if n := counter(t, p.waitLine(t, "logsockd: output "+out+": records="), "reopens"); n != 1 {
				t.Errorf("reopens=%d, want 1", n)
			}
			t.Logf("noticed after %v (seen on stderr); %d records sent", noticed, sent)
		})
	}
}

//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestOutputConcurrent: records from many connections at once, a reopen
// in the middle: every record is in one of the two files, once and whole,
// each connection's in order, and the counters say so. Under -race it
// checks the output's locking, which the process tests cannot.
func TestOutputConcurrent(t *testing.T) {
	const conns, perConn = 8, 20000
	path := filepath.Join(t.TempDir(), "out.log")
	fail := make(chan error, 1)
	o, err := newOutput(outputConfig{path: path, perm: 0o600, delay: time.Millisecond}, newFormatter(true, false), fail)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	half := make(chan struct{}, conns)
	for c := range conns {
		wg.Go(func() {
			rec := tcpRecord("")
			rec.Conn = uint64(c + 1)
			for i := range perConn {
				rec.Msg = fmt.Appendf(rec.Msg[:0], "%d\n", i)
				o.record(rec)
				if i == perConn/2 {
					half <- struct{}{}
				}
			}
			o.connClosed(rec.Conn)
		})
	}
	for range conns {
		<-half
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := o.Reopen(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-fail:
		t.Fatal(err)
	default:
	}

	next := map[uint64]int{}
	var size int
	for _, p := range []string{path + ".1", path} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		size += len(b)
		for line := range bytes.Lines(b) {
			var r struct {
				Conn uint64
				Msg  string
			}
			if err := json.Unmarshal(line, &r); err != nil {
				t.Fatalf("%s: %q: %v", p, line, err)
			}
			if want := fmt.Sprint(next[r.Conn]); r.Msg != want {
				t.Fatalf("%s: conn %d: message %s, want %s", p, r.Conn, r.Msg, want)
			}
			next[r.Conn]++
		}
	}
	for c := range conns {
		if n := next[uint64(c+1)]; n != perConn {
			t.Errorf("conn %d: %d records, want %d", c+1, n, perConn)
		}
	}
	// One reopen, Reopen's; two if the watch for a renamed file (every
	// second) came first, on a machine that kept this test from its
	// Reopen that long.
	if st := o.Stats(); st.Records != conns*perConn || st.Bytes != uint64(size) || st.Dropped != 0 || st.Reopens < 1 || st.Reopens > 2 {
		t.Errorf("stats %+v, want %d records of %d bytes, one reopen (two at most)", st, conns*perConn, size)
	}
	if len(o.fmt.conns.m) != 0 {
		t.Errorf("%d connections still cached after their ends", len(o.fmt.conns.m))
	}
}

// TestOutputLoneRecord: a record alone is written within the flush delay,
// not when a buffer fills or at Close.
func TestOutputLoneRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.log")
	o, err := newOutput(outputConfig{path: path, perm: 0o600, delay: time.Millisecond}, newFormatter(false, false), make(chan error, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	o.record(tcpRecord("alone"))
	// The file is the writer goroutine's to write, with no signal: poll
	// its count, which it makes once the write has returned (issue 17:
	// polled first, the file had the record and the count was still 0).
	for deadline := time.Now().Add(5 * time.Second); o.Stats().Records == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the record was not written within 5 s")
		}
	}
	if st := o.Stats(); st.Records != 1 {
		t.Errorf("stats %+v, want 1 record", st)
	}
	if b, err := os.ReadFile(path); err != nil || !bytes.HasSuffix(b, []byte(" alone\n")) {
		t.Errorf("the file holds %q, %v; want the record", b, err)
	}
}

// TestOutputMend: a file that does not end with a newline, as a crash or
// a full disk leaves it, has its torn last line set aside in FILE.torn
// when it is opened, and when SIGHUP reopens it; the file then ends at
// its last whole line, and the records follow. What cannot be set aside
// is ended with a newline. A file that another process holds locked is
// left as it is.
func TestOutputMend(t *testing.T) {
	long := strings.Repeat("x", 100<<10) // more than one block of tornStart
	for _, tc := range []struct {
		name, file string
		maxLine    int64
		locked     bool
		want, torn string // the file before the records, FILE.torn
		reopen     bool
	}{
		{name: "empty", file: "", want: ""},
		{name: "whole", file: "a\nb\n", want: "a\nb\n"},
		{name: "torn", file: "a\nb\n{\"par", want: "a\nb\n", torn: "{\"par\n"},
		{name: "no-newline", file: "part", want: "", torn: "part\n"},
		{name: "long", file: "a\n" + long, want: "a\n", torn: long + "\n"},
		{name: "beyond-maxline", file: "a\n" + long, maxLine: 1000, want: "a\n" + long + "\n"},
		{name: "locked", file: "a\npart", locked: true, want: "a\npart"},
		{name: "reopen", file: "a\npart", reopen: true, want: "a\n", torn: "part\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out.log")
			if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.locked {
				f, err := os.Open(path)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if err := flock(f, unix.LOCK_SH); err != nil {
					t.Fatal(err)
				}
			}
			if tc.reopen {
				// Opened whole; the path then names a torn file.
				if err := os.Rename(path, path+".1"); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			o, err := newOutput(outputConfig{path: path, perm: 0o600, delay: time.Millisecond, maxLine: tc.maxLine},
				newFormatter(false, false), make(chan error, 1))
			if err != nil {
				t.Fatal(err)
			}
			if tc.reopen {
				if err := os.WriteFile(path+".2", []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(path+".2", path); err != nil {
					t.Fatal(err)
				}
				if err := o.Reopen(); err != nil {
					t.Fatal(err)
				}
			}
			o.record(tcpRecord("next"))
			if err := o.Close(); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.want + string(newFormatter(false, false).append(nil, tcpRecord("next")))
			if string(b) != want {
				t.Errorf("the file: %.100q, want %.100q", b, want)
			}
			torn, err := os.ReadFile(path + tornSuffix)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Fatal(err)
			}
			if string(torn) != tc.torn {
				t.Errorf("%s: %.80q, want %.80q", tornSuffix, torn, tc.torn)
			}
			if st, n := o.Stats(), uint64(min(1, len(tc.torn))); st.Torn != n {
				t.Errorf("stats %+v, want torn=%d", st, n)
			}
		})
	}
}

//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestOutputConcurrent: records from many connections at once, a reopen
// in the middle: every record is in one of the two files, once and whole,
// each connection's in order, and the counters say so. Under -race it
// checks the output's locking, which the process tests cannot.
func TestOutputConcurrent(t *testing.T) {
	const conns, perConn = 8, 20000
	path := filepath.Join(t.TempDir(), "out.log")
	fail := make(chan error, 1)
	o, err := newOutput(path, 0o600, time.Millisecond, newFormatter(true, false), fail)
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
	if st := o.Stats(); st.Records != conns*perConn || st.Bytes != uint64(size) || st.Dropped != 0 || st.Reopens != 1 {
		t.Errorf("stats %+v, want %d records of %d bytes, one reopen", st, conns*perConn, size)
	}
	if len(o.fmt.conns.m) != 0 {
		t.Errorf("%d connections still cached after their ends", len(o.fmt.conns.m))
	}
}

// TestOutputLoneRecord: a record alone is written within the flush delay,
// not when a buffer fills or at Close.
func TestOutputLoneRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.log")
	o, err := newOutput(path, 0o600, time.Millisecond, newFormatter(false, false), make(chan error, 1))
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

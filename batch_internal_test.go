package logsock

import (
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// TestBatchingReleasesIdleMemory: the batch buffers, kept while busy, are
// given back once the writer has had nothing to do for idleRelease.
func TestBatchingReleasesIdleMemory(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if c, err := l.Accept(); err == nil {
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	ls, err := Dial("tcp", l.Addr().String(), &Config{Batching: true})
	if err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, 1000)
	for range 4000 { // 4 MB: batches of hundreds of KiB
		ls.Write(msg)
	}
	if err := ls.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	held := func() int {
		ls.mu.Lock()
		defer ls.mu.Unlock()
		return cap(ls.held.buf) + cap(ls.spare)
	}
	if held() == 0 {
		t.Fatal("no batch memory kept after the burst")
	}
	start := time.Now()
	for held() != 0 {
		if time.Since(start) > idleRelease+10*time.Second {
			t.Fatalf("%d bytes still kept %v after the burst", held(), time.Since(start))
		}
		time.Sleep(10 * time.Millisecond) // the release is a timer's: nothing to wait on
	}
	ls.Close()
	<-done
}

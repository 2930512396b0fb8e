package logsock_test

import (
	"bytes"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/logsocktest"
)

// TestServerFigures measures what a Server costs with 1,000 idle
// connections (handshake sent), then 1,000 slowloris connections on top
// (nothing sent, a long handshake timeout): the process's RSS, goroutines
// and descriptors, logged at each stage, with bounds. Both ends are in
// this process, so the figures a connection count two sockets.
func TestServerFigures(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 2,000 connections")
	}
	if raceEnabled {
		t.Skip("the race detector changes memory use")
	}
	const n = 1000
	log := newConnLog()
	srv := log.Server()
	srv.HandshakeTimeout = time.Hour
	addr := logsocktest.Serve(t, "unix", srv)

	base := memFigures()
	t.Logf("%-16s RSS %5.1f MiB, heap %5.1f MiB, stacks %5.1f MiB, %4d goroutines, %4d fds",
		"Server alone", mib(base.rss), mib(base.heapOnly), mib(base.stacks), base.goroutines, base.fds)
	prev := base
	// report logs the figures once this stage's n connections are open
	// (conns in all), and checks what each added. Go sizes new stacks by
	// the average it has seen, so the stacks depend on the tests run
	// before: their bound is looser.
	report := func(name string, conns int) {
		t.Helper()
		f := memFigures()
		per := func(now, before uint64) float64 { return (float64(now) - float64(before)) / n }
		t.Logf("%-16s RSS %5.1f MiB, heap %5.1f MiB, stacks %5.1f MiB, %4d goroutines, %4d fds; "+
			"each connection added: RSS %5.0f B, heap %5.0f B, stacks %5.0f B",
			name, mib(f.rss), mib(f.heapOnly), mib(f.stacks), f.goroutines, f.fds,
			per(f.rss, prev.rss), per(f.heapOnly, prev.heapOnly), per(f.stacks, prev.stacks))
		if g := per(uint64(f.goroutines), uint64(prev.goroutines)); g >= 3 {
			t.Errorf("%s: %.2f goroutines a connection, want under 3", name, g)
		}
		if h := per(f.heapOnly, prev.heapOnly); h >= 8<<10 {
			t.Errorf("%s: %.0f bytes of heap a connection, want under 8 KiB", name, h)
		}
		if st := per(f.stacks, prev.stacks); st >= 16<<10 {
			t.Errorf("%s: %.0f bytes of stack a connection, want under 16 KiB", name, st)
		}
		if fds := per(uint64(f.fds), uint64(prev.fds)); fds > 2 {
			t.Errorf("%s: %.2f descriptors a connection, want 2 (one each end)", name, fds)
		}
		if st := srv.Stats(); st.Active != uint64(conns) {
			t.Errorf("%s: Stats %+v, want %d active", name, st, conns)
		}
		prev = f
	}

	conns := make([]net.Conn, 0, 2*n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	dial := func(stream []byte) {
		c, err := net.Dial("unix", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := c.Write(stream); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		dial(logsock.AppendHandshake(nil, 0, int32(os.Getpid())))
	}
	waitParked(t, n)
	report("1000 idle", n)

	for range n {
		dial(nil)
	}
	waitParked(t, 2*n)
	report("+1000 slowloris", 2*n)

	for _, c := range conns {
		c.Close()
	}
	log.WaitEnds(t, 2*n)
	if st := srv.Stats(); st.Active != 0 || st.Ends[logsock.ReasonEOF] != 2*n {
		t.Errorf("after closing: Stats %+v, want none active and %d ends at EOF", st, 2*n)
	}
}

// waitParked waits until n connections' goroutines wait without a buffer.
func waitParked(t *testing.T, n int) {
	t.Helper()
	buf := make([]byte, 64<<20)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) { // polling: no signal for "blocked"
		k := runtime.Stack(buf, true)
		if bytes.Count(buf[:k], []byte("(*serverConn).waitReadable")) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d connections parked", n)
		}
	}
}

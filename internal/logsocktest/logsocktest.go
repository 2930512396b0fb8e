// Package logsocktest holds what the tests of logsock and of its
// programs share: collectors to log into (a Sink behind a logsock.Server,
// a FakeCollector that misbehaves on request), raw connections and
// frames, short Unix socket paths, certificates, and TestMain. Only tests
// import it.
package logsocktest

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/testenv"
	"github.com/logsock/logsock/internal/tlstest"
	"go.uber.org/goleak"
)

// SinkAddr is the -addr flag of the example programs and logsock-cat for
// a collector listening on network at addr.
func SinkAddr(network, addr string) string {
	if network == "unix" {
		return "unix://" + addr
	}
	return addr
}

// SocketPath returns a Unix socket path in a short temporary directory:
// t.TempDir can exceed sun_path's 108 bytes. On Windows, where logsock
// does not promise Unix sockets, it skips the test.
func SocketPath(t testing.TB) string {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("Unix sockets: not promised on Windows")
	}
	dir, err := os.MkdirTemp("", "ls")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "s")
}

// ReadPid reads exactly a handshake from r, and no more, as a collector
// that reads the handshake and stops does.
func ReadPid(r io.Reader, order logsock.ByteOrder) (int32, error) {
	var b [HeaderLen]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, err
	}
	return logsock.NewDecoder(bytes.NewReader(b[:]), &logsock.DecoderConfig{Order: order}).Handshake()
}

// Listen returns a listener on loopback TCP or on a Unix socket in a
// short temporary directory.
func Listen(t testing.TB, network string) net.Listener {
	t.Helper()
	address := "127.0.0.1:0"
	if network == "unix" {
		address = SocketPath(t)
	}
	l, err := net.Listen(network, address)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Serve runs srv on a new listener of network until the test ends, and
// returns the address to dial.
func Serve(t testing.TB, network string, srv *logsock.Server) string {
	t.Helper()
	l := Listen(t, network)
	ServeOn(t, srv, l)
	WaitServing(t, l)
	return l.Addr().String()
}

// ServeOn runs srv on l until the test ends, or until stop, which shuts
// it down gracefully and checks how Serve ended.
func ServeOn(t testing.TB, srv *logsock.Server, l net.Listener) (stop func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			res := make(chan error, 1)
			go func() { res <- srv.Shutdown(ctx) }()
			var stacks string // what the drain waited on, when it took too long
			select {
			case err := <-res:
				res <- err
			case <-ctx.Done():
				stacks = Stacks("logsock")
			}
			if err := <-res; err != nil {
				t.Errorf("Shutdown: %v; Stats %+v; the goroutines of logsock at the deadline:\n%s", err, srv.Stats(), stacks)
			}
			if err := <-done; !errors.Is(err, logsock.ErrServerClosed) {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// Stacks returns the stacks of the goroutines that have a frame whose
// function name contains pkg, for a failure's message: what a Server or a
// client waited on.
func Stacks(pkg string) string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out bytes.Buffer
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte(pkg+".")) && !bytes.Contains(g, []byte("logsocktest.Stacks")) {
			out.Write(g)
			out.WriteString("\n\n")
		}
	}
	return out.String()
}

// FormatRecords lists recs, a line each, for a failure's message.
func FormatRecords(recs []logsock.Record) string {
	var b bytes.Buffer
	for _, r := range recs {
		fmt.Fprintf(&b, "conn=%d pid=%d %q\n", r.Conn, r.Pid, r.Msg)
	}
	return b.String()
}

// RawConn dials addr and writes the given stream bytes.
func RawConn(t testing.TB, network, addr string, stream ...[]byte) net.Conn {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	for _, b := range stream {
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// Frames returns a stream's bytes: the handshake of pid, then a frame of
// each message, in order.
func Frames(order logsock.ByteOrder, pid int32, msgs ...string) []byte {
	b := AppendHandshake(nil, order, pid)
	for _, m := range msgs {
		b = AppendFrame(b, order, []byte(m))
	}
	return b
}

// Certs makes a certificate authority and its certificates for the test.
func Certs(t testing.TB) *tlstest.Set {
	t.Helper()
	s, remove, err := tlstest.NewTemp()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(remove)
	return s
}

// Main is the TestMain of the packages that use logsocktest: it runs the
// tests, checks that no goroutine outlives them (goleak), and removes the
// programs that testenv built for them.
//
// Unless -test.parallel is given, parallel tests run 8 at a time, not
// GOMAXPROCS (2 on the CI machine) at a time: they spend their time
// waiting on sockets, child processes and deadlines, not computing
// (issue 18: the library's tests in 20 s). Under the race detector, 4: 8
// of its slower tests beside two CPU hogs made set-ups take seconds and
// children's writes time out (stress run).
func Main(m *testing.M) {
	flag.Parse()
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet {
		n := 8
		if raceEnabled {
			n = 4
		}
		flag.Set("test.parallel", strconv.Itoa(max(n, runtime.GOMAXPROCS(0))))
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		testenv.RemovePrograms()
		os.Exit(code)
	}))
}

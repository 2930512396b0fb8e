//go:build unix

package pyclient2_test

// examples/pyclient2/client.py, a protocol v2 client written from
// PROTOCOL.md alone, run as a real process against the library's Server
// and against logsockd, each stopped in the middle and started again.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/logsocktest"
	"github.com/logsock/logsock/internal/proctest"
	"github.com/logsock/logsock/internal/testenv"
)

// startClient runs client.py with args; it reads the returned pipe.
func startClient(t *testing.T, args ...string) (*proctest.Proc, *os.File) {
	t.Helper()
	py := testenv.Python(t)
	script, err := filepath.Abs("client.py")
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	p := proctest.StartWith(t, func(cmd *exec.Cmd) error {
		cmd.Stdin = r
		return cmd.Start()
	}, py, append([]string{script}, args...)...)
	return p, w
}

// line is the i-th line fed to client.py: the message "m<i>" at level
// i%8, which the "<N>" prefix gives.
func line(i int) string { return fmt.Sprintf("<%d>m%d\n", i%8, i) }

// feed writes lines from to to-1 into w.
func feed(t *testing.T, w io.Writer, from, to int) {
	t.Helper()
	var b bytes.Buffer
	for i := from; i < to; i++ {
		b.WriteString(line(i))
	}
	if _, err := w.Write(b.Bytes()); err != nil {
		t.Fatalf("writing client.py's input: %v", err)
	}
}

// feeder writes lines into client.py's input from a goroutine, in chunks,
// until halted or until it has written feedLimit: so that, however fast
// the machine, the client is sending when the collector stops, and
// however slow the collector's restart, the test's records stay bounded
// (under the race detector, a restart of logsockd that took seconds let
// an unbounded feeder write millions of lines, and the test binary grew
// to 12 GB reading them back).
type feeder struct {
	stop chan struct{}
	done chan error
	n    int // lines written; read after done
}

// feedLimit bounds what a feeder writes: about 2 s of client.py's sending
// on an idle machine (27,500 lines a second), far more than the 2,000
// lines after which the tests stop the collector. While the collector is
// down, client.py takes its input as fast as the feeder writes it, and
// holds it.
const feedLimit = 50_000

func startFeeder(w io.Writer) *feeder {
	f := &feeder{stop: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		for {
			select {
			case <-f.stop:
				f.done <- nil
				return
			default:
			}
			if f.n >= feedLimit {
				<-f.stop
				f.done <- nil
				return
			}
			var b bytes.Buffer
			for i := f.n; i < f.n+500; i++ {
				b.WriteString(line(i))
			}
			if _, err := w.Write(b.Bytes()); err != nil {
				f.done <- err
				return
			}
			f.n += 500
		}
	}()
	return f
}

// halt stops the feeder and returns the number of lines it wrote.
func (f *feeder) halt(t *testing.T) int {
	t.Helper()
	close(f.stop)
	select {
	case err := <-f.done:
		if err != nil {
			t.Fatalf("writing client.py's input: %v", err)
		}
	case <-time.After(proctest.WaitTimeout):
		t.Fatal("client.py does not read its input")
	}
	return f.n
}

// serve runs srv on l in a goroutine, and returns a channel that gets
// what Serve returned.
func serve(t *testing.T, srv *logsock.Server, l net.Listener) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	logsocktest.WaitServing(t, l)
	return done
}

// listen listens on network, at addr if it is not empty: a TCP port that
// can be bound again once closed (testenv.ListenTCP), or a Unix socket.
func listen(t *testing.T, network, addr string) net.Listener {
	t.Helper()
	var l net.Listener
	var err error
	switch {
	case addr != "":
		l, err = net.Listen(network, addr)
	case network == "tcp":
		l, err = testenv.ListenTCP()
	default:
		l, err = net.Listen(network, logsocktest.SocketPath(t))
	}
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestPyClientServer: client.py's lines reach a logsock.Server with their
// number (seq), level, tag and the client's time, and none is lost when the
// Server is closed (Close: connections cut, acknowledgements lost) or shut
// down (Shutdown: G) while the client sends, and another starts on the
// same address after lines were logged in the outage. A line that came
// twice (a lost acknowledgement) has the same session, seq, level and time
// both times; after a graceful Shutdown none comes twice, since the client
// waits at G for the acknowledgement of what it sent.
func TestPyClientServer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ network, stop string }{
		{"tcp", "close"}, {"unix", "close"}, {"tcp", "shutdown"}, {"unix", "shutdown"},
	} {
		t.Run(tc.network+"/"+tc.stop, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			sink := logsocktest.NewSink()
			l := listen(t, tc.network, "")
			addr := l.Addr().String()
			first := sink.Server()
			serve(t, first, l)
			p, w := startClient(t, "-addr", logsocktest.SinkAddr(tc.network, addr), "-tag", "pytest", "-v", "-timeout", "30")

			// Stop the Server while the client sends.
			fed := startFeeder(w)
			sink.WaitRecords(t, 2000)
			if tc.stop == "close" {
				first.Close()
			} else {
				ctx, cancel := context.WithTimeout(context.Background(), proctest.WaitTimeout)
				defer cancel()
				if err := first.Shutdown(ctx); err != nil {
					t.Fatalf("Shutdown: %v", err)
				}
			}
			before := fed.halt(t)
			total := before + 1000

			// Lines logged in the outage: once the client has failed to
			// connect with all of them held, start another Server.
			feed(t, w, before, total)
			p.WaitLines(t, p.Stderr, "a failed connect with every line held", func(lines []string) bool {
				return strings.Contains(strings.Join(lines, "\n"), fmt.Sprintf("the last numbered %d", total))
			})
			restart := time.Now()
			serve(t, sink.Server(), listen(t, tc.network, addr))
			w.Close()
			p.MustExit(t) // exit 0: every line acknowledged
			if tc.stop == "shutdown" && !strings.Contains(p.Stderr.String(), "the collector said goodbye") {
				t.Errorf("client.py did not see the G; stderr:\n%s", p.Stderr)
			}

			recs := sink.Records()
			byMsg := map[string]logsock.Record{}
			dups := 0
			for _, r := range recs {
				var i int
				if _, err := fmt.Sscanf(string(r.Msg), "m%d", &i); err != nil || i < 0 || i >= total {
					t.Fatalf("record %q: not a line fed", r.Msg)
				}
				if r.Seq != uint64(i+1) || r.Level != logsock.Level(i%8) || r.Tag != "pytest" || int(r.Pid) != p.Pid() ||
					r.Session == (logsock.SessionID{}) || r.Session != recs[0].Session {
					t.Fatalf("record %q: seq %d level %v tag %q pid %d session %v; want seq %d level %v tag pytest pid %d session %v",
						r.Msg, r.Seq, r.Level, r.Tag, r.Pid, r.Session, i+1, logsock.Level(i%8), p.Pid(), recs[0].Session)
				}
				// The client's time: when it logged the line, before the
				// Server read it; for a line of the outage, before the
				// second Server started.
				if r.Logged.Before(start) || r.Logged.After(r.Time) || i >= before && !r.Logged.Before(restart) {
					t.Errorf("record %q: logged %v, received %v; the test started %v, the second Server %v",
						r.Msg, r.Logged, r.Time, start, restart)
				}
				if prev, ok := byMsg[string(r.Msg)]; ok {
					dups++
					if prev.Seq != r.Seq || prev.Session != r.Session || !prev.Logged.Equal(r.Logged) || prev.Level != r.Level {
						t.Errorf("record %q came twice, differently: %+v and %+v", r.Msg, prev, r)
					}
				}
				byMsg[string(r.Msg)] = r
			}
			if len(byMsg) != total {
				t.Errorf("%d lines of %d arrived", len(byMsg), total)
			}
			ends := sink.WaitEnds(t, 2) // one to each Server, at least
			// At G the client stops writing, waits for the
			// acknowledgement of what it sent, and closes: nothing comes
			// twice.
			if tc.stop == "shutdown" && dups != 0 {
				t.Errorf("%d lines came twice after a graceful Shutdown", dups)
			}
			t.Logf("%d records, %d of them again, over %d connections", len(recs), dups, len(ends))
		})
	}
}

// TestPyClientMaxFrame: a line longer than the collector's max frame, which
// its hello told, is not sent (the collector would close the connection):
// the others arrive, and client.py says that one was not delivered, and
// exits 1.
func TestPyClientMaxFrame(t *testing.T) {
	t.Parallel()
	sink := logsocktest.NewSink()
	srv := sink.Server()
	srv.MaxFrame = 64
	l := listen(t, "unix", "")
	serve(t, srv, l)
	p, w := startClient(t, "-addr", "unix://"+l.Addr().String(), "-timeout", "30")
	if _, err := io.WriteString(w, "short\n"+strings.Repeat("x", 65)+"\nafter\n"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	p.MustFail(t, 1, "1 frames not delivered")
	var got []string
	for _, r := range sink.WaitRecords(t, 2) {
		got = append(got, string(r.Msg))
	}
	if strings.Join(got, ",") != "short,after" {
		t.Errorf("records %q, want short and after", got)
	}
	if ends := sink.WaitEnds(t, 1); len(ends) != 1 || ends[0] != nil {
		t.Errorf("connection ends %v, want one clean", ends)
	}
}

// TestPyClientLogsockd: client.py into logsockd -json -o FILE, which is
// SIGKILLed while the client sends, and started again on the same port:
// every line is in the file.
func TestPyClientLogsockd(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "pc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	out := filepath.Join(dir, "out.jsonl")
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	args := []string{"-json", "-listen", "tcp://" + addr, "-o", out}
	d := startLogsockd(t, args...)
	p, w := startClient(t, "-addr", addr, "-tag", "pytest", "-timeout", "30")
	fed := startFeeder(w)
	waitLines(t, d, out, 2000)
	d.Signal(t, syscall.SIGKILL)
	d.Wait(t)
	d = startLogsockd(t, args...)
	total := fed.halt(t)
	w.Close()
	p.MustExit(t)
	d.Signal(t, syscall.SIGTERM)
	if err := d.Wait(t); err != nil {
		t.Fatalf("logsockd: %v; stderr:\n%s", err, d.Stderr)
	}

	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, l := range bytes.Split(bytes.TrimSuffix(b, []byte{'\n'}), []byte{'\n'}) {
		var rec struct {
			Pid int
			Msg string
		}
		if err := json.Unmarshal(l, &rec); err != nil {
			t.Fatalf("%s: line %q: %v", out, l, err)
		}
		if rec.Pid == p.Pid() {
			seen[rec.Msg]++
		}
	}
	var missing []int
	dups := 0
	for i := range total {
		n := seen[fmt.Sprintf("m%d", i)]
		if n == 0 {
			missing = append(missing, i)
		}
		dups += max(n-1, 0)
	}
	if len(missing) > 0 {
		// client.py exited 0: logsockd acknowledged them all.
		t.Errorf("%d lines acknowledged are not in the file: m%d... m%d", len(missing), missing[0], missing[len(missing)-1])
	}
	t.Logf("%d lines, %d of them written again after the kill", total, dups)
}

// startLogsockd runs logsockd with args and waits until it listens.
func startLogsockd(t *testing.T, args ...string) *proctest.Proc {
	t.Helper()
	d := proctest.Start(t, testenv.Program(t, "logsockd"), args...)
	d.WaitLines(t, d.Stderr, "logsockd listening", func(lines []string) bool {
		return strings.Contains(strings.Join(lines, "\n"), "logsockd: listening on ")
	})
	return d
}

// waitLines polls the file at path, which logsockd d writes (a file
// signals nothing), until it has n lines.
func waitLines(t *testing.T, d *proctest.Proc, path string, n int) {
	t.Helper()
	for deadline := time.Now().Add(proctest.WaitTimeout); ; time.Sleep(5 * time.Millisecond) {
		b, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		if bytes.Count(b, []byte{'\n'}) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d lines, want %d; logsockd's stderr:\n%s", path, bytes.Count(b, []byte{'\n'}), n, d.Stderr)
		}
	}
}

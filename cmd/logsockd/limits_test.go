//go:build unix

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/logsock/logsock/internal/testenv"
)

// daemon is logsockd run as a process by a test, with its standard error
// kept by lines.
type daemonProc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs []string
	more chan struct{} // a value after each new line, if there is room
}

// startDaemon runs logsockd with args until the test ends, and returns it
// with the TCP address it listens on (its one -listen, tcp://127.0.0.1:0).
func startDaemon(t *testing.T, args ...string) (*daemonProc, string) {
	t.Helper()
	cmd := exec.Command(testenv.Program(t, "logsockd"), append([]string{"-listen", "tcp://127.0.0.1:0"}, args...)...)
	testenv.SetDeathSignal(cmd)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemonProc{cmd: cmd, more: make(chan struct{}, 1)}
	lines := make(chan struct{})
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			d.mu.Lock()
			d.logs = append(d.logs, sc.Text())
			d.mu.Unlock()
			select {
			case d.more <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-lines
		cmd.Wait()
	})
	var addr string
	d.waitLog(t, "the listening line", logged(1, func(l string) bool {
		a, ok := strings.CutPrefix(l, "logsockd: listening on tcp://")
		if ok {
			addr = a
		}
		return ok
	}))
	return d, addr
}

// waitLog waits until ok accepts the lines of logsockd's standard error
// so far.
func (d *daemonProc) waitLog(t *testing.T, what string, ok func([]string) bool) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		d.mu.Lock()
		done := ok(d.logs)
		d.mu.Unlock()
		if done {
			return
		}
		select {
		case <-d.more:
		case <-timeout:
			d.mu.Lock()
			defer d.mu.Unlock()
			t.Fatalf("logsockd did not log %s:\n%s", what, strings.Join(d.logs, "\n"))
		}
	}
}

// logged returns a predicate for waitLog: at least n lines that ok accepts.
func logged(n int, ok func(string) bool) func([]string) bool {
	return func(lines []string) bool {
		for _, l := range lines {
			if ok(l) {
				n--
			}
		}
		return n <= 0
	}
}

// stop sends SIGTERM and waits for logsockd's exit.
func (d *daemonProc) stop(t *testing.T) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.waitLog(t, "its counters at exit", logged(1, func(l string) bool { return strings.HasPrefix(l, "logsockd: server: ") }))
}

// fileMsgs returns the msg of each JSON line of path.
func fileMsgs(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for line := range bytes.Lines(data) {
		var rec struct{ Msg string }
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		msgs = append(msgs, rec.Msg)
	}
	return msgs
}

// TestLogsockdHeldSlots is issue 20's break 1 against the daemon: every
// slot of -max-conns held by connections that sent a handshake and
// nothing more, then logsock-cat sends 1,000 lines from the same address
// (127.0.0.1). With the per-peer limit at -max-conns, logsock-cat's
// connection waits in the backlog, and its lines arrive once the held
// connections go; with the default (half of -max-conns), the held
// connections past half are refused, and so is logsock-cat's, whose lines
// arrive anyway, read from its refused connections. Either way none is
// lost, and logsock-cat exits 0.
func TestLogsockdHeldSlots(t *testing.T) {
	const slots, lines = 20, 1000
	for _, tc := range []struct {
		name    string
		args    []string
		refused int // held connections refused
	}{
		{"backlog", []string{"-max-conns-per-peer", fmt.Sprint(slots)}, 0},
		{"per-peer default", nil, slots / 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.jsonl")
			d, addr := startDaemon(t, append([]string{"-json", "-o", out, "-max-conns", fmt.Sprint(slots)}, tc.args...)...)
			var held []net.Conn
			for range slots {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				if _, err := c.Write(binary.LittleEndian.AppendUint32(nil, 1)); err != nil {
					t.Fatal(err)
				}
				held = append(held, c)
			}
			refusal := func(l string) bool { return strings.Contains(l, "closed after 0 frames: conn_limit") }
			d.waitLog(t, "the refusals", logged(tc.refused, refusal))

			var input strings.Builder
			for i := range lines {
				fmt.Fprintf(&input, "line %d\n", i)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cat := exec.CommandContext(ctx, testenv.Program(t, "logsock-cat"), "-addr", addr, "-timeout", "30s")
			cat.Stdin = strings.NewReader(input.String())
			var catErr bytes.Buffer
			cat.Stderr = &catErr
			if err := cat.Run(); err != nil {
				t.Fatalf("logsock-cat: %v\n%s", err, catErr.Bytes())
			}
			for _, c := range held {
				c.Close() // in the backlog case, room for logsock-cat's connection
			}
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				data, err := os.ReadFile(out)
				if err != nil {
					t.Fatal(err)
				}
				if bytes.Count(data, []byte("\n")) >= lines {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d lines in the file, want %d", bytes.Count(data, []byte("\n")), lines)
				}
			}
			d.stop(t)
			d.mu.Lock()
			if n := len(slices.DeleteFunc(slices.Clone(d.logs), func(l string) bool { return !refusal(l) })); n != tc.refused {
				t.Errorf("%d held connections refused, want %d", n, tc.refused)
			}
			d.mu.Unlock()
			got := fileMsgs(t, out)
			if len(got) != lines {
				t.Fatalf("%d records in the file, want %d; logsock-cat said:\n%s", len(got), lines, catErr.Bytes())
			}
			for i, m := range got {
				if want := fmt.Sprint("line ", i); m != want {
					t.Fatalf("record %d: %q, want %q", i, m, want)
				}
			}
		})
	}
}

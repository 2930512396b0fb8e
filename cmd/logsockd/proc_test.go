//go:build unix

package main

// logsockd as a real process, for the tests of what an operator sees:
// its file after a crash, a full disk, a deleted file.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/proctest"
	"github.com/logsock/logsock/internal/testenv"
)

// waitTimeout bounds each wait for a child's line, exit or file.
const waitTimeout = proctest.WaitTimeout

// proc is a logsockd process, or a launcher that becomes logsockd
// (systemd-socket-activate).
type proc struct{ *proctest.Proc }

// startLogsockd runs logsockd with args and waits until it listens; it
// returns the process and the address it printed first (as
// tcp://127.0.0.1:PORT or unix:///path). The process is killed and waited
// for when the test ends.
func startLogsockd(t *testing.T, args ...string) (*proc, string) {
	t.Helper()
	p := startProc(t, nil, testenv.Program(t, "logsockd"), args...)
	addr, _ := strings.CutPrefix(p.waitLine(t, "logsockd: listening on "), "logsockd: listening on ")
	return p, addr
}

// startProc runs the program name with args, and env added to this
// process's environment: logsockd, or a launcher that becomes logsockd
// (systemd-socket-activate). It is killed and waited for when the test
// ends.
func startProc(t *testing.T, env []string, name string, args ...string) *proc {
	t.Helper()
	return &proc{proctest.StartWith(t, func(cmd *exec.Cmd) error {
		if env != nil {
			cmd.Env = append(os.Environ(), env...)
		}
		return cmd.Start()
	}, name, args...)}
}

// matching returns the complete lines of p's standard error that contain
// s.
func (p *proc) matching(s string) []string { return linesWith(p.Stderr.Lines(), s) }

// linesWith returns the lines that contain s.
func linesWith(lines []string, s string) []string {
	var out []string
	for _, l := range lines {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

// waitLine waits for a line of p's standard error that contains s, and
// returns the first.
func (p *proc) waitLine(t *testing.T, s string) string {
	t.Helper()
	return p.waitMatching(t, s, 1)[0]
}

// waitMatching waits for n lines of p's standard error that contain s,
// and returns all that do.
func (p *proc) waitMatching(t *testing.T, s string, n int) []string {
	t.Helper()
	lines := p.WaitLines(t, p.Stderr, fmt.Sprintf("%d lines %q", n, s),
		func(lines []string) bool { return len(linesWith(lines, s)) >= n })
	return linesWith(lines, s)
}

// exitCode waits for p to exit and returns its exit status.
func (p *proc) exitCode(t *testing.T) int {
	t.Helper()
	var ee *exec.ExitError
	if err := p.Wait(t); err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return p.Cmd.ProcessState.ExitCode()
}

// counter returns the value of key=N in line.
func counter(t *testing.T, line, key string) int {
	t.Helper()
	m := regexp.MustCompile(`\b` + key + `=(\d+)\b`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("%q: no %s=N", line, key)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// dial dials an address that logsockd printed; the LogSocket is closed
// when the test ends.
func dial(t *testing.T, printed string, cfg *logsock.Config) *logsock.LogSocket {
	t.Helper()
	network, address := dialAddr(t, printed)
	ls, err := logsock.Dial(network, address, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ls.Close() })
	return ls
}

// dialAddr splits an address that logsockd printed into a network and an
// address to dial.
func dialAddr(t *testing.T, printed string) (network, address string) {
	t.Helper()
	network, address, ok := strings.Cut(printed, "://")
	if !ok {
		t.Fatalf("address %q", printed)
	}
	return network, address
}

// waitFor polls cond, every few milliseconds, until it holds: it looks at
// a file that another process writes, which signals nothing.
func waitFor(t *testing.T, p *proc, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(waitTimeout); !cond(); time.Sleep(5 * time.Millisecond) {
		select {
		case <-p.Done:
			t.Fatalf("logsockd exited (%v) before %s; stderr:\n%s", p.Err, what, p.Stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v; stderr:\n%s", what, waitTimeout, p.Stderr)
		}
	}
}

// fileSize returns the size of the file at path, 0 if there is none.
func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// jqLines runs jq -c . over the file at path, which must parse whole, and
// returns its number of lines.
func jqLines(t *testing.T, path string) int {
	t.Helper()
	out, err := exec.Command(testenv.Jq(t), "-c", ".", path).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("jq -c . %s: %v: %s", path, err, stderr)
	}
	return bytes.Count(out, []byte{'\n'})
}

// seqMsgs reads the JSON lines of the file at path, each a message
// "NAME SEQ" or "NAME SEQ PAD", and returns each name's sequence numbers
// in the order of the lines.
func seqMsgs(t *testing.T, path string) map[string][]int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 {
		return map[string][]int{}
	}
	return seqLines(t, strings.Split(strings.TrimSuffix(string(b), "\n"), "\n"))
}

// seqLines reads JSON lines, each a message "NAME SEQ" or "NAME SEQ PAD",
// and returns each name's sequence numbers in the order of the lines.
func seqLines(t *testing.T, lines []string) map[string][]int {
	t.Helper()
	seqs := map[string][]int{}
	for _, l := range lines {
		var r struct{ Msg string }
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		name, seq, _ := strings.Cut(r.Msg, " ")
		seq, _, _ = strings.Cut(seq, " ")
		n, err := strconv.Atoi(seq)
		if err != nil {
			t.Fatalf("line %q: not a sequence message", l)
		}
		seqs[name] = append(seqs[name], n)
	}
	return seqs
}

// checkRun checks that seqs run from first to last, each once, in order.
func checkRun(t *testing.T, what string, seqs []int, first, last int) {
	t.Helper()
	if len(seqs) == 0 || seqs[0] != first || seqs[len(seqs)-1] != last || len(seqs) != last-first+1 {
		t.Fatalf("%s: %d records, %s; want %d..%d, each once", what, len(seqs), span(seqs), first, last)
	}
	for i, s := range seqs {
		if s != first+i {
			t.Fatalf("%s: record %d is message %d, want %d", what, i, s, first+i)
		}
	}
}

func span(seqs []int) string {
	if len(seqs) == 0 {
		return "none"
	}
	return fmt.Sprintf("%d..%d", seqs[0], seqs[len(seqs)-1])
}

// sigterm sends SIGTERM and waits for the exit, whose status must be code.
func (p *proc) sigterm(t *testing.T, code int) {
	t.Helper()
	p.Signal(t, syscall.SIGTERM)
	if got := p.exitCode(t); got != code {
		t.Fatalf("logsockd exited %d, want %d; stderr:\n%s", got, code, p.Stderr)
	}
}

// sender logs "NAME SEQ PAD" messages from a goroutine through a
// LogSocket: n of them, or until halt if n is 0. After every 256 it
// pauses for pace (load, not synchronisation; 0: as fast as it can).
type sender struct {
	name   string
	ls     *logsock.LogSocket
	logged atomic.Int64 // Log calls that returned nil
	failed atomic.Int64 // Log calls that returned an error before halt
	stop   chan struct{}
	done   chan struct{}
}

// pad makes a record's line about 150 bytes in JSON.
const pad = "................................................"

func startSender(t *testing.T, name string, ls *logsock.LogSocket, n int, pace time.Duration) *sender {
	t.Helper()
	s := &sender{name: name, ls: ls, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for seq := 0; n == 0 || seq < n; seq++ {
			if seq%256 == 0 && seq > 0 {
				select {
				case <-s.stop:
					return
				default:
				}
				if pace > 0 {
					time.Sleep(pace)
				}
			}
			if err := ls.Log(fmt.Sprintf("%s %d %s", name, seq, pad)); err == nil {
				s.logged.Add(1)
				continue
			}
			select {
			case <-s.stop: // halt closed the LogSocket
				return
			default:
				s.failed.Add(1)
			}
		}
	}()
	t.Cleanup(s.halt)
	return s
}

// halt stops the sender and closes its LogSocket, which ends a Log that
// waits for room.
func (s *sender) halt() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.ls.Close()
	<-s.done
}

// shortDir returns a new directory with a short path (a Unix socket's
// path must fit in 108 bytes), removed when the test ends.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ld")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

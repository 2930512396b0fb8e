//go:build unix

package main

// cmd/logsock-cat, run as a real process: lines of standard input, or of
// a command's output, into frames, delivered to a collector that may be
// down when it starts.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/logsocktest"
	"github.com/logsock/logsock/internal/proctest"
	"github.com/logsock/logsock/internal/testenv"
)

// startCat runs logsock-cat with args, and with stdin as its standard
// input.
func startCat(t *testing.T, stdin io.Reader, args ...string) *proctest.Proc {
	t.Helper()
	return proctest.StartWith(t, func(cmd *exec.Cmd) error {
		cmd.Stdin = stdin
		return cmd.Start()
	}, testenv.Program(t, "logsock-cat"), args...)
}

// catPipe returns a pipe for logsock-cat's standard input, closed when
// the test ends. An *os.File, not an io.Pipe: the child reads it itself,
// so that Wait does not wait for a goroutine that copies into it.
func catPipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

// catExit waits for logsock-cat to exit and checks its status.
func catExit(t *testing.T, p *proctest.Proc, code int) {
	t.Helper()
	got := 0
	if err := p.Wait(t); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatal(err)
		}
		got = ee.ExitCode()
	}
	if got != code {
		t.Fatalf("logsock-cat: exit status %d, want %d; stderr:\n%s", got, code, p.Stderr)
	}
}

// TestLogsockCatStdin: each line of standard input is one frame of its
// exact bytes, without the newline; a line longer than -max-frame is split
// into frames of -max-frame bytes, in order; a last line without a
// newline is sent too.
func TestLogsockCatStdin(t *testing.T) {
	t.Parallel()
	const long = "0123456789abcdef0123456789ABCDEF-tail" // 37 bytes
	input := "plain\n\n로그 ✓\n\xff\xfe\x00 not UTF-8\n" + long + "\r\nno newline"
	want := []string{"plain", "", "로그 ✓", "\xff\xfe\x00 not UTF-8", long[:16], long[16:32], long[32:] + "\r", "no newline"}
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			t.Parallel()
			col := logsocktest.NewFakeCollector(t, network, logsocktest.FakeDecode)
			p := startCat(t, strings.NewReader(input), "-addr", logsocktest.SinkAddr(network, col.Addr), "-max-frame", "16")
			catExit(t, p, 0)
			if s := p.Stderr.String(); s != "" {
				t.Errorf("stderr %q, want nothing", s)
			}
			if got := col.OneConnMsgs(t, p.Pid()); !slices.Equal(got, want) {
				t.Errorf("frames %q, want %q", got, want)
			}
		})
	}
}

// TestLogsockCatCommand: with a command, the lines of its standard output
// and standard error go to the collector, and logsock-cat exits with the
// command's status.
func TestLogsockCatCommand(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		script string
		want   []string // in any order: the two streams are read apart
		code   int
	}{
		{"exit-3", "echo out; printf 'err' >&2; exit 3", []string{"err", "out"}, 3},
		{"killed", "echo before; kill -KILL $$", []string{"before"}, 128 + int(syscall.SIGKILL)},
		{"ok", "printf 'a\\nb\\n'", []string{"a", "b"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			col := logsocktest.NewFakeCollector(t, "tcp", logsocktest.FakeDecode)
			p := startCat(t, nil, "-addr", col.Addr, "--", "sh", "-c", tc.script)
			catExit(t, p, tc.code)
			// Nothing on standard error: the command's goes to the
			// collector, and logsock-cat, with the collector up, has
			// nothing to say (not even while one stream's write
			// connects and the other's frame waits for it).
			if s := p.Stderr.String(); s != "" {
				t.Errorf("stderr %q, want nothing", s)
			}
			got := col.OneConnMsgs(t, p.Pid())
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("frames %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("not-found", func(t *testing.T) {
		t.Parallel()
		col := logsocktest.NewFakeCollector(t, "tcp", logsocktest.FakeDecode)
		p := startCat(t, nil, "-addr", col.Addr, "--", "/nonexistent/command")
		catExit(t, p, 127)
		if !strings.Contains(p.Stderr.String(), "/nonexistent/command") {
			t.Errorf("stderr %q, want the command named", p.Stderr)
		}
	})
}

// TestLogsockCatCollectorDown: logsock-cat starts while no collector
// listens, says that it holds the lines, and delivers them all, in order,
// once the collector is up, before it exits.
func TestLogsockCatCollectorDown(t *testing.T) {
	t.Parallel()
	col := logsocktest.FakeDown(t, "unix", logsocktest.FakeDecode)
	in, w := catPipe(t)
	p := startCat(t, in, "-addr", "unix://"+col.Addr)
	if _, err := io.WriteString(w, "held 1\nheld 2\n"); err != nil {
		t.Fatal(err)
	}
	p.WaitLines(t, p.Stderr, "the notice that lines are held", func(lines []string) bool {
		return slices.Contains(lines, "logsock-cat: cannot reach the collector at unix://"+col.Addr+": holding the lines until it is up")
	})
	col.Start(t)
	if _, err := io.WriteString(w, "after\n"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	catExit(t, p, 0)
	if got, want := col.OneConnMsgs(t, p.Pid()), []string{"held 1", "held 2", "after"}; !slices.Equal(got, want) {
		t.Errorf("frames %q, want %q", got, want)
	}
}

// undeliveredCases are logsock-cat runs whose frames the collector does
// not take: input on stdin or from a command, which may fail; frames is
// how many are sent, code the exit status that says they were not
// delivered.
var undeliveredCases = []struct {
	name    string
	stdin   string
	command []string
	frames  int
	code    int
}{
	{"stdin", "one\ntwo\n", nil, 2, 1},
	{"command", "", []string{"--", "sh", "-c", "echo one"}, 1, 1},
	{"command-failed", "", []string{"--", "sh", "-c", "echo one; exit 3"}, 1, 3},
}

// TestLogsockCatUndelivered: when the collector stays down, logsock-cat
// tries for -timeout at the end, then says how many frames it could not
// deliver, and exits 1, or with the command's status if that is not 0.
func TestLogsockCatUndelivered(t *testing.T) {
	t.Parallel()
	for _, tc := range undeliveredCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			col := logsocktest.FakeDown(t, "unix", logsocktest.FakeDecode)
			addr := "unix://" + col.Addr
			p := startCat(t, strings.NewReader(tc.stdin), append([]string{"-addr", addr, "-timeout", "200ms"}, tc.command...)...)
			catExit(t, p, tc.code)
			want := fmt.Sprintf("logsock-cat: %d of %d frames not delivered to %s: %v", tc.frames, tc.frames, addr, logsock.ErrUndelivered)
			if !strings.Contains(p.Stderr.String(), want) {
				t.Errorf("stderr %q, want %q", p.Stderr, want)
			}
		})
	}
}

// TestLogsockCatBufferFull: with the collector down, more lines than the
// buffer holds: the reading never waits (the oldest are dropped, and it
// says so once), SIGTERM ends it at once, and it says what it dropped.
func TestLogsockCatBufferFull(t *testing.T) {
	t.Parallel()
	col := logsocktest.FakeDown(t, "unix", logsocktest.FakeDecode)
	in, w := catPipe(t)
	p := startCat(t, in, "-addr", "unix://"+col.Addr, "-timeout", "100ms")
	// 6 MiB, when the buffer holds 4. In a goroutine: a logsock-cat that
	// stopped reading would block it, and the wait below fails instead.
	line := strings.Repeat("x", 1023) + "\n"
	go func() {
		for range 6 << 10 {
			if _, err := io.WriteString(w, line); err != nil {
				return // logsock-cat has exited: its stderr tells
			}
		}
	}()
	p.WaitLines(t, p.Stderr, "the notice that lines are dropped", func(lines []string) bool {
		return slices.Contains(lines, "logsock-cat: the buffer of lines held is full: dropping the oldest")
	})
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	catExit(t, p, 128+int(syscall.SIGTERM))
	// The lines read before the signal: more than the buffer held at the
	// end (the notice came when it filled), and none delivered. How many
	// more depends on how soon the signal came.
	var lost, read, held int
	m := regexp.MustCompile(`logsock-cat: \d+ of \d+ frames not delivered to unix://.*frames undelivered: \d+ frames`).FindString(p.Stderr.String())
	if _, err := fmt.Sscanf(m, "logsock-cat: %d of %d", &lost, &read); err != nil {
		t.Fatalf("stderr %q: no count of the frames not delivered", p.Stderr)
	}
	if k := regexp.MustCompile(`undelivered: (\d+) frames`).FindStringSubmatch(m); k != nil {
		fmt.Sscan(k[1], &held)
	}
	if lost != read || held == 0 || read <= held {
		t.Errorf("stderr %q: want all frames read not delivered, more than the %d held at the end", p.Stderr, held)
	}
}

// TestLogsockCatSignals: SIGTERM without a command stops the reading, and
// the lines read, a last one without its newline too, are delivered; with
// a command, SIGTERM is passed on to it.
func TestLogsockCatSignals(t *testing.T) {
	t.Parallel()
	t.Run("stdin", func(t *testing.T) {
		t.Parallel()
		col := logsocktest.NewFakeCollector(t, "unix", logsocktest.FakeDecode)
		in, w := catPipe(t)
		p := startCat(t, in, "-addr", "unix://"+col.Addr)
		// One write: the read that returns "line" returns "partial" too.
		if _, err := io.WriteString(w, "line\npartial"); err != nil {
			t.Fatal(err)
		}
		col.WaitRecords(t, 1)
		if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		catExit(t, p, 128+int(syscall.SIGTERM))
		if got, want := col.OneConnMsgs(t, p.Pid()), []string{"line", "partial"}; !slices.Equal(got, want) {
			t.Errorf("frames %q, want %q", got, want)
		}
	})
	t.Run("command", func(t *testing.T) {
		t.Parallel()
		col := logsocktest.NewFakeCollector(t, "unix", logsocktest.FakeDecode)
		p := startCat(t, nil, "-addr", "unix://"+col.Addr, "--", "sh", "-c",
			`trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 0.01; done`)
		col.WaitRecords(t, 1)
		if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		catExit(t, p, 7)
		if got, want := col.OneConnMsgs(t, p.Pid()), []string{"ready", "got TERM"}; !slices.Equal(got, want) {
			t.Errorf("frames %q, want %q", got, want)
		}
	})
}

// TestLogsockCatCommandLine: -h says that long lines are split; bad
// command lines exit 2 and say why.
func TestLogsockCatCommandLine(t *testing.T) {
	t.Parallel()
	bin := testenv.Program(t, "logsock-cat")
	help := proctest.Start(t, bin, "-h")
	help.MustExit(t)
	if s := help.Stderr.String(); !strings.Contains(s, "is split into frames of -max-frame bytes") {
		t.Errorf("-h says %q: want what happens to a line longer than -max-frame", s)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--"}, "no command after --"},
		{[]string{"-max-frame", "0"}, "-max-frame 0: want a positive number of bytes"},
		{[]string{"-timeout", "0s"}, "-timeout 0s: want a positive duration"},
		{[]string{"-addr", "localhost"}, "missing port in address"},
		{[]string{"-addr", "udp://127.0.0.1:1"}, `network "udp"`},
		{[]string{"-addr", "unix://"}, `want unix:///path`},
		{[]string{"-order", "middle"}, "-order"},
		{[]string{"-addr", "127.0.0.1:1", "sh"}, `unexpected argument "sh": put a command after --`},
	} {
		proctest.Start(t, bin, tc.args...).MustFail(t, 2, tc.want)
	}
}

//go:build unix

package logsock_test

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
	"github.com/logsock/logsock/internal/testenv"
)

// startCat runs logsock-cat with args, and with stdin as its standard
// input.
func startCat(t *testing.T, stdin io.Reader, args ...string) *proc {
	t.Helper()
	return startWith(t, func(cmd *exec.Cmd) error {
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
func catExit(t *testing.T, p *proc, code int) {
	t.Helper()
	got := 0
	if err := p.wait(t); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatal(err)
		}
		got = ee.ExitCode()
	}
	if got != code {
		t.Fatalf("logsock-cat: exit status %d, want %d; stderr:\n%s", got, code, p.stderr)
	}
}

// oneConnRecords waits until connection 1 of col has ended, and returns its
// records, checking that the handshake named p.
func oneConnRecords(t *testing.T, col *fakeCollector, p *proc) []string {
	t.Helper()
	col.waitConnEnd(t, 1)
	var msgs []string
	for _, r := range col.waitRecords(t, 0) {
		if r.Conn != 1 || int(r.Pid) != p.pid() {
			t.Errorf("record %q: conn %d pid %d, want conn 1 pid %d", r.Msg, r.Conn, r.Pid, p.pid())
		}
		msgs = append(msgs, string(r.Msg))
	}
	return msgs
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
			col := newFakeCollector(t, network, fakeDecode)
			p := startCat(t, strings.NewReader(input), "-addr", sinkAddr(network, col.addr), "-max-frame", "16")
			catExit(t, p, 0)
			if s := p.stderr.String(); s != "" {
				t.Errorf("stderr %q, want nothing", s)
			}
			if got := oneConnRecords(t, col, p); !slices.Equal(got, want) {
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
			col := newFakeCollector(t, "tcp", fakeDecode)
			p := startCat(t, nil, "-addr", col.addr, "--", "sh", "-c", tc.script)
			catExit(t, p, tc.code)
			// Nothing on standard error: the command's goes to the
			// collector, and logsock-cat, with the collector up, has
			// nothing to say (not even while one stream's write
			// connects and the other's frame waits for it).
			if s := p.stderr.String(); s != "" {
				t.Errorf("stderr %q, want nothing", s)
			}
			got := oneConnRecords(t, col, p)
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("frames %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("not-found", func(t *testing.T) {
		t.Parallel()
		col := newFakeCollector(t, "tcp", fakeDecode)
		p := startCat(t, nil, "-addr", col.addr, "--", "/nonexistent/command")
		catExit(t, p, 127)
		if !strings.Contains(p.stderr.String(), "/nonexistent/command") {
			t.Errorf("stderr %q, want the command named", p.stderr)
		}
	})
}

// TestLogsockCatCollectorDown: logsock-cat starts while no collector
// listens, says that it holds the lines, and delivers them all, in order,
// once the collector is up, before it exits.
func TestLogsockCatCollectorDown(t *testing.T) {
	t.Parallel()
	col := fakeDown(t, "unix", fakeDecode)
	in, w := catPipe(t)
	p := startCat(t, in, "-addr", "unix://"+col.addr)
	if _, err := io.WriteString(w, "held 1\nheld 2\n"); err != nil {
		t.Fatal(err)
	}
	p.waitLines(t, p.stderr, "the notice that lines are held", func(lines []string) bool {
		return slices.Contains(lines, "logsock-cat: cannot reach the collector at unix://"+col.addr+": holding the lines until it is up")
	})
	col.start(t)
	if _, err := io.WriteString(w, "after\n"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	catExit(t, p, 0)
	if got, want := oneConnRecords(t, col, p), []string{"held 1", "held 2", "after"}; !slices.Equal(got, want) {
		t.Errorf("frames %q, want %q", got, want)
	}
}

// TestLogsockCatUndelivered: when the collector stays down, logsock-cat
// tries for -timeout at the end, then says how many frames it could not
// deliver, and exits 1, or with the command's status if that is not 0.
func TestLogsockCatUndelivered(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		stdin   string
		command []string
		frames  int
		code    int
	}{
		{"stdin", "one\ntwo\n", nil, 2, 1},
		{"command", "", []string{"--", "sh", "-c", "echo one"}, 1, 1},
		{"command-failed", "", []string{"--", "sh", "-c", "echo one; exit 3"}, 1, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			col := fakeDown(t, "unix", fakeDecode)
			addr := "unix://" + col.addr
			p := startCat(t, strings.NewReader(tc.stdin), append([]string{"-addr", addr, "-timeout", "200ms"}, tc.command...)...)
			catExit(t, p, tc.code)
			want := fmt.Sprintf("logsock-cat: %d of %d frames not delivered to %s: %v", tc.frames, tc.frames, addr, logsock.ErrUndelivered)
			if !strings.Contains(p.stderr.String(), want) {
				t.Errorf("stderr %q, want %q", p.stderr, want)
			}
		})
	}
}

// TestLogsockCatBufferFull: with the collector down, more lines than the
// buffer holds: the reading never waits (the oldest are dropped, and it
// says so once), SIGTERM ends it at once, and it says what it dropped.
func TestLogsockCatBufferFull(t *testing.T) {
	t.Parallel()
	col := fakeDown(t, "unix", fakeDecode)
	in, w := catPipe(t)
	p := startCat(t, in, "-addr", "unix://"+col.addr, "-timeout", "100ms")
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
	p.waitLines(t, p.stderr, "the notice that lines are dropped", func(lines []string) bool {
		return slices.Contains(lines, "logsock-cat: the buffer of lines held is full: dropping the oldest")
	})
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	catExit(t, p, 128+int(syscall.SIGTERM))
	// The lines read before the signal: more than the buffer holds, and
	// none delivered.
	var lost, read int
	m := regexp.MustCompile(`logsock-cat: \d+ of \d+ frames not delivered to unix://`).FindString(p.stderr.String())
	if _, err := fmt.Sscanf(m, "logsock-cat: %d of %d", &lost, &read); err != nil || lost != read || read <= 4<<10 {
		t.Errorf("stderr %q: want all of more than 4,096 frames not delivered", p.stderr)
	}
}

// TestLogsockCatSignals: SIGTERM without a command stops the reading, and
// the lines read, a last one without its newline too, are delivered; with
// a command, SIGTERM is passed on to it.
func TestLogsockCatSignals(t *testing.T) {
	t.Parallel()
	t.Run("stdin", func(t *testing.T) {
		t.Parallel()
		col := newFakeCollector(t, "unix", fakeDecode)
		in, w := catPipe(t)
		p := startCat(t, in, "-addr", "unix://"+col.addr)
		// One write: the read that returns "line" returns "partial" too.
		if _, err := io.WriteString(w, "line\npartial"); err != nil {
			t.Fatal(err)
		}
		col.waitRecords(t, 1)
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		catExit(t, p, 128+int(syscall.SIGTERM))
		if got, want := oneConnRecords(t, col, p), []string{"line", "partial"}; !slices.Equal(got, want) {
			t.Errorf("frames %q, want %q", got, want)
		}
	})
	t.Run("command", func(t *testing.T) {
		t.Parallel()
		col := newFakeCollector(t, "unix", fakeDecode)
		p := startCat(t, nil, "-addr", "unix://"+col.addr, "--", "sh", "-c",
			`trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 0.01; done`)
		col.waitRecords(t, 1)
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		catExit(t, p, 7)
		if got, want := oneConnRecords(t, col, p), []string{"ready", "got TERM"}; !slices.Equal(got, want) {
			t.Errorf("frames %q, want %q", got, want)
		}
	})
}

// TestLogsockCatCommandLine: -h says that long lines are split; bad
// command lines exit 2 and say why.
func TestLogsockCatCommandLine(t *testing.T) {
	t.Parallel()
	bin := testenv.Program(t, "logsock-cat")
	help := start(t, bin, "-h")
	help.mustExit(t)
	if s := help.stderr.String(); !strings.Contains(s, "is split into frames of -max-frame bytes") {
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
		sockMustFail(t, start(t, bin, tc.args...), 2, tc.want)
	}
}

//go:build unix

package main

// examples/demo as a newcomer meets it: it must need nothing else
// running.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logsock/logsock/internal/testenv"
)

// demoTimeout is how long examples/demo may take. It takes 0.1 s on a
// 2-core VM (measured), most of it python3's start: 0.2 s at a load
// average of 8, and 1.6 to 2 s there through a pyenv shim.
const demoTimeout = 10 * time.Second

// demoRow is one row of the demo's tables: a frame as its collector saw it.
type demoRow struct {
	conn, pid, writer int // writer 0: "-", not known
	msg               string
}

// demoRowRE matches a row: conn, "PID ROLE", "PID ROLE" or "-", and the
// message, quoted.
var demoRowRE = regexp.MustCompile(`^  (\d+) +(\d+) [\w.]+ +(?:(\d+) [\w.]+|-) +(".*")$`)

// demoSections splits the demo's transcript into the rows of each
// section, by the first words of its heading.
func demoSections(t *testing.T, out string) map[string][]demoRow {
	t.Helper()
	sections := map[string][]demoRow{}
	var section string
	for _, line := range strings.Split(out, "\n") {
		for _, h := range []string{"Experiment 1", "Experiment 2", "Experiment 3", "A child in Python"} {
			if strings.HasPrefix(line, h+":") {
				section = h
				sections[h] = []demoRow{}
			}
		}
		m := demoRowRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		var r demoRow
		r.conn, _ = strconv.Atoi(m[1])
		r.pid, _ = strconv.Atoi(m[2])
		r.writer, _ = strconv.Atoi(m[3]) // "" for "-": 0
		msg, err := strconv.Unquote(m[4])
		if err != nil || section == "" {
			t.Fatalf("row %q: %v, in section %q", line, err, section)
		}
		r.msg = msg
		sections[section] = append(sections[section], r)
	}
	return sections
}

// TestExampleDemo runs examples/demo as a newcomer would, with nothing
// else running: it must exit 0 within seconds, show the article's three
// experiments as its collector received them, with nothing lost or torn,
// and leave no process behind.
func TestExampleDemo(t *testing.T) {
	t.Parallel()
	bin := testenv.Program(t, "demo")
	ctx, cancel := context.WithTimeout(context.Background(), demoTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	// A process group of its own: every process it starts is in it, and
	// must be gone when it has exited. At the timeout, the whole group is
	// killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// python3 first in PATH is the interpreter itself: a pyenv shim is a
	// shell script that runs a dozen more (0.5 s against 0.09 s at a load
	// average of 8). Where there is none, the demo skips its Python child.
	if py, err := testenv.PythonExe(); err == nil {
		cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(py)+string(os.PathListSeparator)+os.Getenv("PATH"))
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	began := time.Now()
	err := cmd.Run()
	t.Logf("demo: %v after %v; transcript:\n%s", err, time.Since(began).Round(time.Millisecond), &stdout)
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("demo: %v; stderr:\n%s", err, &stderr)
	}
	if err := syscall.Kill(-cmd.Process.Pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("the demo's process group %d still has processes: kill(0): %v", cmd.Process.Pid, err)
	}

	out := stdout.String()
	if !strings.Contains(out, "\nThe collector received ") || !strings.HasSuffix(out, ": 0 lost, 0 torn.\n") {
		t.Errorf("the transcript does not end with 0 lost, 0 torn")
	}
	if strings.Contains(out, "UNEXPECTED") {
		t.Errorf("the transcript says something went otherwise than in the article")
	}
	sections := demoSections(t, out)
	parent := cmd.Process.Pid
	pids := map[int]bool{} // every process named, as a writer or by its message
	for _, rows := range sections {
		for _, r := range rows {
			var pid int
			if _, err := fmt.Sscanf(r.msg, "current pid: %d", &pid); err == nil {
				pids[pid] = true
			}
			pids[r.writer] = true
		}
	}

	// 1: one connection, named by the parent, carries the frames of two
	// processes, each as the kernel saw it write them.
	one := sections["Experiment 1"]
	writers := map[int]bool{}
	for _, r := range one {
		writers[r.writer] = true
		if r.conn != one[0].conn || r.pid != parent || r.msg != "current pid: "+strconv.Itoa(r.writer) {
			t.Errorf("experiment 1: %+v: want conn %d, handshake pid %d, the writer's pid in the message", r, one[0].conn, parent)
		}
	}
	if len(one) != 4 || len(writers) != 2 || !writers[parent] {
		t.Errorf("experiment 1: %d frames by writers %v: want 4, by the parent %d and its child", len(one), writers, parent)
	}

	// 2: after the collector drops it, a connection each, opened by the
	// process that writes on it: two distinct pids.
	two := sections["Experiment 2"]
	handshakes := map[int]int{} // conn -> pid
	for _, r := range two {
		handshakes[r.conn] = r.pid
		if r.writer != r.pid || r.msg != "current pid: "+strconv.Itoa(r.pid) || len(one) > 0 && r.conn == one[0].conn {
			t.Errorf("experiment 2: %+v: want a new connection, opened by its writer", r)
		}
	}
	if len(two) != 2 || len(handshakes) != 2 || handshakes[two[0].conn] == handshakes[two[len(two)-1].conn] {
		t.Errorf("experiment 2: frames %+v: want two connections, opened by two processes", two)
	}

	// 3: the child logs from its main goroutine only; over TCP the writer
	// is not known.
	three := sections["Experiment 3"]
	var fromGoroutine, fromChild int
	for _, r := range three {
		switch {
		case r.pid != parent || r.writer != 0 || r.conn != three[0].conn:
			t.Errorf("experiment 3: %+v: want conn %d, handshake pid %d, writer unknown", r, three[0].conn, parent)
		case r.msg == "current pid: "+strconv.Itoa(parent)+" (logging goroutine)":
			fromGoroutine++
		case strings.HasSuffix(r.msg, " (main goroutine)") && r.msg != "current pid: "+strconv.Itoa(parent)+" (main goroutine)":
			fromChild++
		}
	}
	if len(three) != 4 || fromGoroutine != 2 || fromChild != 1 {
		t.Errorf("experiment 3: %+v: want 4 frames, 2 from the parent's goroutine, 1 from the child", three)
	}

	// The Python child: on the parent's connection, under its own pid.
	py := sections["A child in Python"]
	if _, err := testenv.PythonExe(); err != nil {
		if os.Getenv("LOGSOCK_REQUIRE_PYTHON") == "1" {
			t.Errorf("python3: %v", err)
		}
		if !strings.Contains(out, "Skipped: python3 is not in PATH.") {
			t.Errorf("no python3, and the demo does not say that it skipped its child")
		}
	} else if len(py) != 2 || py[0].pid != parent || py[0].writer == parent || py[0].writer == 0 ||
		py[1].writer != py[0].writer || py[0].msg != "hello from child.py" || py[1].msg != "로그" {
		t.Errorf("Python child: frames %+v: want its two messages on a connection of pid %d", py, parent)
	}

	// Every process that wrote a frame has exited.
	delete(pids, parent)
	delete(pids, 0)
	for pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d, a child of the demo, is still there: kill(0): %v", pid, err)
		}
	}
}

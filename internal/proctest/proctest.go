// Package proctest runs child processes for the tests: the programs
// under test (logsockd, logsock-cat, the examples, Python scripts) with
// their output kept in memory, and the test binary itself again, in a
// role that its package's init plays (StartChild). A test waits for a
// child's lines or its exit without polling; every child is killed and
// waited for when its test ends. It imports nothing of logsock: the
// callers pass what starts a child (a LogSocket's Start, to share its
// connection).
package proctest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logsock/logsock/internal/testenv"
)

// WaitTimeout bounds each wait for a child's output or exit.
const WaitTimeout = 30 * time.Second

// Output is an io.Writer that keeps what a child writes and signals each
// write, so that a test can wait for a line without polling.
type Output struct {
	mu      sync.Mutex // guards buf
	buf     []byte
	changed chan struct{} // receives a value after each write, if there is room
}

func newOutput() *Output { return &Output{changed: make(chan struct{}, 1)} }

// Write keeps p.
func (b *Output) Write(p []byte) (int, error) {
	b.mu.Lock()
	b.buf = append(b.buf, p...)
	b.mu.Unlock()
	select {
	case b.changed <- struct{}{}:
	default:
	}
	return len(p), nil
}

// Lines returns the complete lines written so far, without their newlines.
func (b *Output) Lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := string(b.buf)
	i := strings.LastIndexByte(s, '\n')
	if i < 0 {
		return nil
	}
	return strings.Split(s[:i], "\n")
}

// String returns all that was written.
func (b *Output) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// Proc is a running child process whose output is kept in memory.
type Proc struct {
	Name           string // the program's base name, or the Python script's
	Cmd            *exec.Cmd
	Stdout, Stderr *Output
	Done           chan struct{} // closed once Wait has returned
	Err            error         // Wait's result; read it after Done
}

// Start runs name with args. The child is killed when the test ends, and
// waited for. (Not sooner: under load a test can run for longer than any
// fixed life, as TestLogsockdForwardRestartUnderLoad did, 35 to 52 s
// against 30, issue 17.)
func Start(t testing.TB, name string, args ...string) *Proc {
	t.Helper()
	return StartWith(t, (*exec.Cmd).Start, name, args...)
}

// StartWith is Start with the function that starts the command, such as a
// LogSocket's Start, which shares its connection with the child. run may
// change the command first (its standard input, its environment).
func StartWith(t testing.TB, run func(*exec.Cmd) error, name string, args ...string) *Proc {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...)
	p := &Proc{Name: filepath.Base(name), Cmd: cmd, Stdout: newOutput(), Stderr: newOutput(),
		Done: make(chan struct{})}
	if len(args) > 0 && strings.HasSuffix(args[0], ".py") {
		p.Name = filepath.Base(args[0])
	}
	cmd.Stdout, cmd.Stderr = p.Stdout, p.Stderr
	cmd.WaitDelay = testenv.OutputDelay // a stray holder of the pipes cannot stall Wait
	testenv.SetDeathSignal(cmd)
	if err := run(cmd); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.Err = cmd.Wait()
		close(p.Done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill() // os.ErrProcessDone if it has exited: fine
		<-p.Done
	})
	return p
}

// Pid returns the child's process id.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Signal sends sig to the child.
func (p *Proc) Signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := p.Cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// Wait waits for the child to exit and returns Wait's error.
func (p *Proc) Wait(t testing.TB) error {
	t.Helper()
	select {
	case <-p.Done:
		return p.Err
	case <-time.After(WaitTimeout):
		t.Fatalf("%s did not exit; stderr:\n%s", p.Name, p.Stderr)
		return nil
	}
}

// MustExit waits for the child and fails the test unless it exits 0.
func (p *Proc) MustExit(t testing.TB) {
	t.Helper()
	if err := p.Wait(t); err != nil {
		t.Fatalf("%s: %v; stderr:\n%s", p.Name, err, p.Stderr)
	}
}

// MustFail waits for the child to exit with status code, and checks that
// its standard error says want.
func (p *Proc) MustFail(t testing.TB, code int, want string) {
	t.Helper()
	var ee *exec.ExitError
	if err := p.Wait(t); !errors.As(err, &ee) || ee.ExitCode() != code {
		t.Fatalf("%s: %v, want exit status %d; stderr:\n%s", p.Name, err, code, p.Stderr)
	}
	if !strings.Contains(p.Stderr.String(), want) {
		t.Errorf("%s: stderr %q, want %q", p.Name, p.Stderr, want)
	}
}

// WaitLines waits until cond holds for the complete lines of out (the
// child's Stdout or Stderr), and returns them. It fails the test if the
// child exits first or the wait times out.
func (p *Proc) WaitLines(t testing.TB, out *Output, what string, cond func([]string) bool) []string {
	t.Helper()
	timeout := time.After(WaitTimeout)
	for {
		if lines := out.Lines(); cond(lines) {
			return lines
		}
		select {
		case <-out.changed:
		case <-p.Done: // Wait has copied all output: one last look
			if lines := out.Lines(); cond(lines) {
				return lines
			}
			t.Fatalf("%s exited (%v) before %s; stdout:\n%s\nstderr:\n%s", p.Name, p.Err, what, p.Stdout, p.Stderr)
		case <-timeout:
			t.Fatalf("timed out waiting for %s from %s; stdout:\n%s\nstderr:\n%s", what, p.Name, p.Stdout, p.Stderr)
		}
	}
}

// WaitStdout waits for n lines on the child's standard output.
func (p *Proc) WaitStdout(t testing.TB, n int) []string {
	t.Helper()
	return p.WaitLines(t, p.Stdout, fmt.Sprintf("%d lines of output", n),
		func(lines []string) bool { return len(lines) >= n })
}

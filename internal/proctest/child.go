package proctest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// childRoleEnv names the role of a test binary that a test runs again as
// a child process.
const childRoleEnv = "LOGSOCK_TEST_CHILD"

// ChildRole returns the role that StartChild gave this process, or "" in
// a test binary that no test started. A package whose tests start
// children calls it from an init function, and plays the role and exits
// when there is one: before TestMain, so that no test runs in the child.
func ChildRole() string { return os.Getenv(childRoleEnv) }

// Child is the test binary run again as a child process in a role that
// takes commands (ServeCommands).
type Child struct {
	Cmd *exec.Cmd
	In  io.WriteCloser
	Out *bufio.Scanner
}

// ChildCommand returns the command that runs this test binary again as a
// child in role, with env added to this process's environment, and with
// this process's standard error.
func ChildCommand(role string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append(env, childRoleEnv+"="+role)...)
	cmd.Stderr = os.Stderr
	return cmd
}

// StartChild starts ChildCommand(role, env...) with run (a LogSocket's
// Start, to share its connection), in a role that takes commands. It is
// killed and waited for when the test ends.
func StartChild(t testing.TB, run func(*exec.Cmd) error, role string, env ...string) *Child {
	t.Helper()
	cmd := ChildCommand(role, env...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := run(cmd); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	c := &Child{Cmd: cmd, In: in, Out: bufio.NewScanner(out)}
	t.Cleanup(func() {
		once.Do(func() {
			in.Close()
			cmd.Process.Kill()
			cmd.Wait()
		})
	})
	return c
}

// Do sends a command and returns the answer.
func (c *Child) Do(t testing.TB, command string) string {
	t.Helper()
	if _, err := fmt.Fprintln(c.In, command); err != nil {
		t.Fatalf("child: %v", err)
	}
	if !c.Out.Scan() {
		t.Fatalf("child: no answer to %q: %v", command, c.Out.Err())
	}
	return c.Out.Text()
}

// Must sends a command and fails the test unless the answer is "ok".
func (c *Child) Must(t testing.TB, command string) {
	t.Helper()
	if got := c.Do(t, command); got != "ok" {
		t.Fatalf("child %q: %s", command, got)
	}
}

// Wait ends the child and checks that it exited cleanly.
func (c *Child) Wait(t testing.TB) {
	t.Helper()
	c.In.Close()
	if err := c.Cmd.Wait(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 0 {
			t.Fatalf("child: %v", err)
		}
	}
}

// ServeCommands is the main loop of a child that takes commands: it does
// what each line of standard input says, "NAME ARG", with the function of
// that name, and answers each with a line: the function's answer, "ok"
// when it has none, or "error: ..." It returns the exit code, 0, at the
// end of standard input.
func ServeCommands(commands map[string]func(arg string) (answer string, err error)) int {
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		name, arg, _ := strings.Cut(in.Text(), " ")
		answer, err := "", fmt.Errorf("unknown command %q", name)
		if f, ok := commands[name]; ok {
			answer, err = f(arg)
		}
		switch {
		case err != nil:
			fmt.Println("error:", err)
		case answer != "":
			fmt.Println(answer)
		default:
			fmt.Println("ok")
		}
	}
	return 0
}

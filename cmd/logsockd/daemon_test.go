//go:build unix

package main

// logsockd as a real process, for what an operator and systemd see of it:
// its -json-msg lines read by jq and Python, run ids, /metrics and
// /healthz, socket activation and readiness.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/testenv"
)

const (
	// daemonLife bounds the life of each child process.
	daemonLife = 2 * time.Minute
	// maxWait bounds each wait for a child's line, exit, file or state.
	maxWait = 30 * time.Second
)

// lineLog keeps what a child writes on its standard error, and signals
// each write, so that a test waits for a line rather than polls.
type lineLog struct {
	mu    sync.Mutex // guards b
	b     []byte
	wrote chan struct{} // cap 1
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.b = append(l.b, p...)
	l.mu.Unlock()
	notify(l.wrote)
	return len(p), nil
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}

// with returns the complete lines that contain s.
func (l *lineLog) with(s string) []string {
	var out []string
	for line := range strings.Lines(l.String()) {
		if line, ok := strings.CutSuffix(line, "\n"); ok && strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return out
}

// child is a running logsockd, or a launcher that becomes one.
type child struct {
	cmd    *exec.Cmd
	stderr *lineLog
	done   chan struct{} // closed once Wait has returned
	err    error         // Wait's; read it after done
}

// startChild starts cmd, with a bounded life, its standard error kept. It
// is killed and waited for when the test ends.
func startChild(t *testing.T, name string, args ...string) *child {
	t.Helper()
	return startCmd(t, exec.Command(name, args...))
}

// startCmd starts cmd as startChild does; cmd may set Env, ExtraFiles,
// Stdout.
func startCmd(t *testing.T, cmd *exec.Cmd) *child {
	t.Helper()
	c := &child{cmd: cmd, stderr: &lineLog{wrote: make(chan struct{}, 1)}, done: make(chan struct{})}
	cmd.Stderr = c.stderr
	cmd.WaitDelay = time.Second
	testenv.SetDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	life := time.AfterFunc(daemonLife, func() { cmd.Process.Kill() })
	go func() {
		c.err = cmd.Wait()
		life.Stop()
		close(c.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill() // os.ErrProcessDone once it has exited: fine
		<-c.done
	})
	return c
}

// startDaemon starts logsockd with args and waits until it says that it
// listens on n sockets, whose addresses it returns as it printed them.
func startDaemon(t *testing.T, n int, args ...string) (*child, []string) {
	t.Helper()
	c := startChild(t, testenv.Program(t, "logsockd"), args...)
	return c, c.listening(t, n)
}

// listening waits for n "listening on" lines and returns their addresses.
func (c *child) listening(t *testing.T, n int) []string {
	t.Helper()
	const prefix = "logsockd: listening on "
	lines := c.waitLines(t, prefix, n)
	for i, l := range lines {
		_, lines[i], _ = strings.Cut(l, prefix)
	}
	return lines
}

// waitLines waits for n lines of standard error that contain s, and
// returns them.
func (c *child) waitLines(t *testing.T, s string, n int) []string {
	t.Helper()
	timeout := time.After(maxWait)
	for {
		if l := c.stderr.with(s); len(l) >= n {
			return l
		}
		select {
		case <-c.stderr.wrote:
		case <-c.done: // Wait has copied all the output: one last look
			if l := c.stderr.with(s); len(l) >= n {
				return l
			}
			t.Fatalf("%s exited (%v) before %d lines %q; stderr:\n%s", c.cmd.Path, c.err, n, s, c.stderr)
		case <-timeout:
			t.Fatalf("no %d lines %q from %s within %v; stderr:\n%s", n, s, c.cmd.Path, maxWait, c.stderr)
		}
	}
}

// waitLine waits for a line of standard error that contains s.
func (c *child) waitLine(t *testing.T, s string) string {
	t.Helper()
	return c.waitLines(t, s, 1)[0]
}

// exit waits for the child to exit and returns its exit status.
func (c *child) exit(t *testing.T) int {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(maxWait):
		t.Fatalf("%s did not exit within %v; stderr:\n%s", c.cmd.Path, maxWait, c.stderr)
	}
	var ee *exec.ExitError
	if c.err != nil && !errors.As(c.err, &ee) {
		t.Fatal(c.err)
	}
	return c.cmd.ProcessState.ExitCode()
}

// stop sends SIGTERM and checks that the child exits 0.
func (c *child) stop(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := c.exit(t); code != 0 {
		t.Fatalf("exit status %d, want 0; stderr:\n%s", code, c.stderr)
	}
}

// dialPrinted dials an address as logsockd printed it; the LogSocket, in
// direct mode, is closed when the test ends.
func dialPrinted(t *testing.T, printed string) *logsock.LogSocket {
	t.Helper()
	network, address, ok := strings.Cut(printed, "://")
	if !ok {
		t.Fatalf("address %q", printed)
	}
	ls, err := logsock.Dial(network, address, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ls.Close() })
	return ls
}

// waitUntil polls cond every few milliseconds until it holds: it looks at
// another process's file or answers, which signal nothing.
func waitUntil(t *testing.T, c *child, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(maxWait); !cond(); time.Sleep(5 * time.Millisecond) {
		select {
		case <-c.done:
			t.Fatalf("%s exited (%v) before %s; stderr:\n%s", c.cmd.Path, c.err, what, c.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not %s within %v; stderr:\n%s", what, maxWait, c.stderr)
		}
	}
}

// waitFileLines waits until the file at path holds n lines, and returns
// them.
func waitFileLines(t *testing.T, c *child, path string, n int) []string {
	t.Helper()
	var b []byte
	waitUntil(t, c, fmt.Sprintf("%d lines in %s", n, path), func() bool {
		var err error
		b, err = os.ReadFile(path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		return bytes.Count(b, []byte{'\n'}) >= n
	})
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// sockDir returns a new directory with a short path, for Unix sockets
// (sun_path holds 108 bytes), removed when the test ends.
func sockDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "lo")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// tool returns the path of the program name, or skips the test without
// it; under require=1 in the environment (as .ci/run sets it) it fails.
func tool(t *testing.T, name, require string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		// Debian puts some in /usr/sbin, which a PATH may lack.
		for _, dir := range []string{"/usr/bin", "/usr/sbin", "/bin"} {
			if p := filepath.Join(dir, name); exec.Command(p, "--version").Run() == nil {
				return p
			}
		}
		if os.Getenv(require) == "1" {
			t.Fatalf("%s not available: %v", name, err)
		}
		t.Skipf("%s not available: %v", name, err)
	}
	return path
}

// httpGet gets url and returns the status, the Content-Type and the body.
func httpGet(t *testing.T, url string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), maxWait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	// No connection kept: goleak would see its goroutines.
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), b.String()
}

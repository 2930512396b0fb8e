// Package testenv finds and makes what the tests run besides themselves:
// the programs (logsockd and the examples), each built once per process,
// python3, jq, and TCP ports that can be bound again after a close, and it
// ties children's lives to their parent's. The tests of logsock and of
// its programs use it, and so do examples/reliability,
// internal/rsyslogtest, internal/faultlab and the bench; it imports
// neither logsock nor testing for that reason.
package testenv

import (
	"context"
	"errors"
	"fmt"
	"go/build"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// TB is the part of testing.TB that the helpers use.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
}

// Programs are the programs that the tests run, as directories of the
// module; a test names one by its last element. examples/reliability is
// left out: no test runs it, and its link costs half a second.
var Programs = []string{"cmd/logsockd", "cmd/logsock-cat", "examples/client", "examples/collector",
	"examples/demo", "examples/fork"}

// OutputDelay is the WaitDelay of the children that the tests start with
// their output in pipes: how long, after the child has exited, Wait waits
// for the goroutines that copy that output before it closes the pipes and
// fails with exec.ErrWaitDelay. It bounds a stray holder of the pipes,
// and none is known: the children start none of their own, and a child
// started at the same moment holds them only until its exec. It is
// generous because those goroutines are the test process's, which a busy
// machine and its own busy goroutines run late: 1 s expired in the fault
// tests beside CPU hogs with nothing else holding the pipes, and a process
// with 8 spinning goroutines read the end of a child's output up to 1.9 s
// after the exit, no other process holding the pipe (issue 17).
const OutputDelay = 20 * time.Second

// buildTimeout bounds the build of one program.
const buildTimeout = 2 * time.Minute

// GoTool returns the go command: the one in PATH (go test puts its own
// first), or the one of the Go installation this program was built with.
func GoTool() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	p := filepath.Join(build.Default.GOROOT, "bin", "go")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("go command not in PATH nor in %s", filepath.Dir(p))
	}
	return p, nil
}

// ModuleRoot returns the directory of the logsock module, which holds the
// examples and testdata. The working directory must be inside the module.
func ModuleRoot(ctx context.Context) (string, error) {
	goTool, err := GoTool()
	if err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, goTool, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside a Go module: run from the logsock module")
	}
	return filepath.Dir(mod), nil
}

// Build builds the programs in the directories dirs of the module at
// root (such as "cmd/logsockd") into dir, each named as its directory's
// last element, with one go build: the links run in parallel.
func Build(ctx context.Context, root, dir string, dirs ...string) error {
	goTool, err := GoTool()
	if err != nil {
		return err
	}
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, d := range dirs {
		args = append(args, "./"+d)
	}
	cmd := exec.CommandContext(ctx, goTool, args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// built holds the programs that Program has built in this process.
var built struct {
	mu    sync.Mutex              // guards dir and progs
	dir   string                  // where they are; RemovePrograms removes it
	progs map[string]func() error // each program's one build, by its directory
}

// Program returns the path of the program name, the last element of one
// of Programs ("logsockd", "logsock-cat", "client"...). The first call
// that names a program builds it, and only it: a package's tests pay for
// the links of the programs they run, not of all six (with the build
// cache warm, 0.9 s of CPU for logsockd alone, 4.5 s for the six, here). The programs go into a temporary directory that
// RemovePrograms removes; a failed build fails every test that asks.
func Program(t TB, name string) string {
	t.Helper()
	i := slices.IndexFunc(Programs, func(d string) bool { return path.Base(d) == name })
	if i < 0 {
		t.Fatalf("testenv: no program %q among %q", name, Programs)
	}
	dir, err := buildProgram(Programs[i])
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return filepath.Join(dir, name)
}

// buildProgram builds the program in the module's directory pkg, once in
// this process, and returns the directory that holds it.
func buildProgram(pkg string) (string, error) {
	built.mu.Lock()
	if built.progs == nil {
		built.progs = map[string]func() error{}
	}
	build, ok := built.progs[pkg]
	if !ok {
		build = sync.OnceValue(func() error {
			dir, err := programDir()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
			defer cancel()
			root, err := moduleRoot()
			if err != nil {
				return err
			}
			return Build(ctx, root, dir, pkg)
		})
		built.progs[pkg] = build
	}
	built.mu.Unlock()
	if err := build(); err != nil {
		return "", err
	}
	return programDir()
}

// programDir returns the directory of the programs, which the first call
// makes.
func programDir() (string, error) {
	built.mu.Lock()
	defer built.mu.Unlock()
	if built.dir == "" {
		dir, err := os.MkdirTemp("", "logsock-programs")
		if err != nil {
			return "", err
		}
		built.dir = dir
	}
	return built.dir, nil
}

// moduleRoot is ModuleRoot, asked once.
var moduleRoot = sync.OnceValues(func() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	return ModuleRoot(ctx)
})

// RemovePrograms removes the programs that Program built, if it built
// any. TestMain calls it once the tests have run.
func RemovePrograms() {
	built.mu.Lock()
	defer built.mu.Unlock()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
}

// pythonTimeout bounds the one run of python3 that resolves it.
const pythonTimeout = 30 * time.Second

// PythonExe returns python3 resolved to the interpreter itself, so that a
// wrapper (a pyenv shim is a shell script) neither stands between a
// child's pid and the pid that it sends nor costs its start-up at every
// run; or an error if there is no python3. It looks once per process.
var PythonExe = sync.OnceValues(func() (string, error) {
	path, err := exec.LookPath("python3")
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), pythonTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "-c", "import sys; print(sys.executable)").Output()
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if exe := strings.TrimSpace(string(out)); exe != "" {
		return exe, nil
	}
	return path, nil
})

// Python returns the python3 interpreter, or skips the test without one;
// under LOGSOCK_REQUIRE_PYTHON=1 (as .ci/run sets it) it fails instead.
func Python(t TB) string {
	t.Helper()
	exe, err := PythonExe()
	if err != nil {
		if os.Getenv("LOGSOCK_REQUIRE_PYTHON") == "1" {
			t.Fatalf("python3 not available: %v", err)
		}
		t.Skipf("python3 not available: %v", err)
	}
	return exe
}

// Jq returns the path of jq, or skips the test without it; under
// LOGSOCK_REQUIRE_JQ=1 (as .ci/run sets it) it fails instead.
func Jq(t TB) string {
	t.Helper()
	path, err := exec.LookPath("jq")
	if err != nil {
		if os.Getenv("LOGSOCK_REQUIRE_JQ") == "1" {
			t.Fatalf("jq not available: %v", err)
		}
		t.Skipf("jq not available: %v", err)
	}
	return path
}

// ListenTCP listens on 127.0.0.1 at a port below the kernel's ephemeral
// range, where the range can be read. A port in that range can be taken,
// while nothing listens on it, as the local port of some outgoing
// connection (a client's own reconnects among them: it can even connect
// to itself), and a restart on the port would fail.
func ListenTCP() (net.Listener, error) {
	lo, hi := 0, 0
	if low, ok := ephemeralLow(); ok && low > 11024 {
		lo, hi = 10000, low-1
	}
	for range 100 {
		port := 0
		if hi > lo {
			port = lo + rand.IntN(hi-lo+1)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil || port == 0 {
			return l, err
		}
	}
	return nil, errors.New("testenv: no free TCP port found")
}

// FreePort returns a port of 127.0.0.1 that ListenTCP found free, and
// closed again, for a process that listens on it later.
func FreePort() (int, error) {
	l, err := ListenTCP()
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ephemeralLow returns the first port of Linux's ephemeral range.
func ephemeralLow() (int, bool) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, false
	}
	n, err := strconv.Atoi(f[0])
	return n, err == nil
}

//go:build unix

package main

// logsockd's Unix socket files, logsockd run as a real process: a stale
// socket is replaced, a live one or a file that is not a socket is
// refused and left alone, -mode is applied from the start, and the file
// goes at exit unless another has taken the path; and who wrote each
// frame.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/logsocktest"
	"github.com/logsock/logsock/internal/proctest"
	"github.com/logsock/logsock/internal/testenv"
)

func TestCollectorProgramSocketFile(t *testing.T) {
	collector := testenv.Program(t, "logsockd")

	t.Run("stale", func(t *testing.T) {
		path := logsocktest.SocketPath(t)
		l, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		l.(*net.UnixListener).SetUnlinkOnClose(false)
		l.Close() // the file stays, and nobody accepts on it: a killed collector's

		started := time.Now()
		p := startSockCollector(t, path)
		if want := "logsockd: removed stale socket " + path; !strings.Contains(p.Stderr.String(), want) {
			t.Errorf("stderr %q, want %q", p.Stderr, want)
		}
		// The new file may well have the stale one's inode number (it did
		// here, on ext4): what shows that it is new is that it serves.
		sockLog(t, path, "after the stale socket")
		if recs := collectorRecords(t, p, 1, started); recs[0].Msg != "after the stale socket" {
			t.Errorf("collector printed %+v", recs)
		}
		stopCollector(t, p)
	})

	t.Run("in-use", func(t *testing.T) {
		path := logsocktest.SocketPath(t)
		started := time.Now()
		first := startSockCollector(t, path)
		live := sockLstat(t, path)

		second := proctest.Start(t, collector, "-json", "-listen", "unix://"+path)
		second.MustFail(t, 1, path+" is already in use by a running collector")
		if !os.SameFile(live, sockLstat(t, path)) {
			t.Fatal("the second collector replaced the first one's socket file")
		}
		// The second one's check was a connection of no frames: the
		// record comes on the next one.
		sockLog(t, path, "still served")
		if recs := collectorRecords(t, first, 1, started); recs[0].Msg != "still served" {
			t.Errorf("first collector printed %+v", recs)
		}
		stopCollector(t, first)
	})

	t.Run("not-a-socket", func(t *testing.T) {
		for _, tc := range []struct {
			name, want string
			make       func(path string) error
		}{
			{"regular", "is a regular file, not a socket", func(path string) error {
				return os.WriteFile(path, []byte("not a socket"), 0o600)
			}},
			{"directory", "is a directory, not a socket", func(path string) error {
				if err := os.Mkdir(path, 0o700); err != nil {
					return err
				}
				return os.WriteFile(filepath.Join(path, "f"), []byte("not a socket"), 0o600)
			}},
			{"symlink", "is a symbolic link, not a socket", func(path string) error {
				// to a stale socket: the link is not the collector's to remove
				l, err := net.Listen("unix", path+"-target")
				if err != nil {
					return err
				}
				l.(*net.UnixListener).SetUnlinkOnClose(false)
				l.Close()
				return os.Symlink(path+"-target", path)
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				path := logsocktest.SocketPath(t)
				if err := tc.make(path); err != nil {
					t.Fatal(err)
				}
				before := sockLstat(t, path)
				p := proctest.Start(t, collector, "-listen", "unix://"+path)
				p.MustFail(t, 1, path+" "+tc.want)
				if after := sockLstat(t, path); !os.SameFile(before, after) || after.Mode() != before.Mode() {
					t.Fatalf("%s: %v, was %v", path, after.Mode(), before.Mode())
				}
				if b, err := os.ReadFile(filepath.Join(path, "f")); tc.name == "directory" && string(b) != "not a socket" {
					t.Errorf("the directory's file: %q, %v", b, err)
				}
				if b, err := os.ReadFile(path); tc.name == "regular" && string(b) != "not a socket" {
					t.Errorf("the regular file: %q, %v", b, err)
				}
			})
		}
	})

	t.Run("mode", func(t *testing.T) {
		umask := sockUmask(t)
		for _, tc := range []struct {
			flag []string
			want fs.FileMode
		}{
			{nil, 0o777 &^ umask},
			{[]string{"-mode", "0660"}, 0o660},
			{[]string{"-mode", "600"}, 0o600},
			{[]string{"-mode", "0o777"}, 0o777}, // wider than the umask leaves
		} {
			t.Run(fmt.Sprintf("%04o", uint32(tc.want)), func(t *testing.T) {
				// Two sockets: the umask is restored between them, and
				// set again for the second.
				a := logsocktest.SocketPath(t)
				b := filepath.Join(filepath.Dir(a), "t")
				p := startSockCollector(t, a, append([]string{"-listen", "unix://" + b}, tc.flag...)...)
				for _, path := range []string{a, b} {
					if fi := sockLstat(t, path); fi.Mode() != fs.ModeSocket|tc.want {
						t.Errorf("%s: mode %v, want %v (umask %04o)", path, fi.Mode(), fs.ModeSocket|tc.want, uint32(umask))
					}
				}
				stopCollector(t, p)
			})
		}
		for _, bad := range []string{"0999", "01777", "rw-rw----", "-1"} {
			t.Run("invalid/"+bad, func(t *testing.T) {
				path := logsocktest.SocketPath(t)
				p := proctest.Start(t, collector, "-mode", bad, "-listen", "unix://"+path)
				p.MustFail(t, 2, "want permission bits in octal")
				if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s: %v, want no file", path, err)
				}
			})
		}
	})

	t.Run("removed-at-exit", func(t *testing.T) {
		for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
			t.Run(sig.String(), func(t *testing.T) {
				path := logsocktest.SocketPath(t)
				p := startSockCollector(t, path, "-listen", "tcp://127.0.0.1:0")
				if err := p.Cmd.Process.Signal(sig); err != nil {
					t.Fatal(err)
				}
				p.MustExit(t)
				if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("after %v: %s: %v, want it removed", sig, path, err)
				}
			})
		}
	})

	// The path is given to another socket while the collector runs: the
	// collector must leave that one at exit (Go's UnixListener would
	// unlink the path on Close whatever it named).
	t.Run("replaced", func(t *testing.T) {
		path := logsocktest.SocketPath(t)
		p := startSockCollector(t, path)
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		other, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { other.Close() })
		ours := sockLstat(t, path)
		if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		p.MustExit(t)
		if !os.SameFile(ours, sockLstat(t, path)) {
			t.Fatalf("%s is no longer the socket that took the path", path)
		}
		if want := "not removing " + path; !strings.Contains(p.Stderr.String(), want) {
			t.Errorf("stderr %q, want %q", p.Stderr, want)
		}
	})

	// A failure after the first socket is made: the collector exits with
	// an error and removes it.
	t.Run("failed-start", func(t *testing.T) {
		path := logsocktest.SocketPath(t)
		missing := filepath.Join(filepath.Dir(path), "missing", "s")
		p := proctest.Start(t, collector, "-listen", "unix://"+path, "-listen", "unix://"+missing)
		p.MustFail(t, 1, missing)
		if !strings.Contains(p.Stderr.String(), "logsockd: listening on unix://"+path) {
			t.Fatalf("stderr %q: the first socket was not made", p.Stderr)
		}
		if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: %v, want it removed", path, err)
		}
	})
}

// startSockCollector runs the collector program with -json on the Unix
// socket path and the other args, and waits until it says that it listens
// on every address.
func startSockCollector(t *testing.T, path string, args ...string) *proc {
	t.Helper()
	p, _ := startDaemon(t, append([]string{"-json", "-listen", "unix://" + path}, args...)...)
	return p
}

func sockLstat(t *testing.T, path string) fs.FileInfo {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

// sockLog logs msg to the collector at the Unix socket path.
func sockLog(t *testing.T, path, msg string) {
	t.Helper()
	ls, err := logsock.Dial("unix", path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	if err := ls.Log(msg); err != nil {
		t.Fatal(err)
	}
	if err := ls.Close(); err != nil {
		t.Fatal(err)
	}
}

// sockUmask returns the umask that the children inherit, from
// /proc/self/status: umask(2) cannot read it without setting it.
func sockUmask(t *testing.T) fs.FileMode {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skipf("the umask: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Umask:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			if err != nil {
				t.Fatalf("/proc/self/status: %q: %v", sc.Text(), err)
			}
			return fs.FileMode(n)
		}
	}
	t.Skip("the umask: no Umask line in /proc/self/status")
	return 0
}

// TestCollectorProgramWriterPid: on a Unix socket, the collector's -json
// lines tell who wrote each frame. examples/fork's parent connects and its
// child inherits the connection: every line names the parent as pid and
// peer_pid, and writer_pid is the process that logged the message ("current
// pid: N" from process N).
func TestCollectorProgramWriterPid(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("SO_PASSCRED and SO_PEERCRED are read on Linux")
	}
	fork := testenv.Program(t, "fork")
	path := logsocktest.SocketPath(t)
	p := startSockCollector(t, path)
	f := proctest.Start(t, fork, "-addr", "unix://"+path, "-count", "3", "-interval", "1ms")
	f.MustExit(t)
	parent := f.Pid()
	writers := map[int]int{}
	for _, line := range p.WaitStdout(t, 6) {
		t.Log(line)
		var r struct {
			Pid       int     `json:"pid"`
			PeerPid   int     `json:"peer_pid"`
			PeerUid   *uint32 `json:"peer_uid"`
			WriterPid int     `json:"writer_pid"`
			Msg       string  `json:"msg"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		var from int
		if _, err := fmt.Sscanf(r.Msg, "current pid: %d", &from); err != nil {
			t.Fatalf("%q: message %q", line, r.Msg)
		}
		if r.Pid != parent || r.PeerPid != parent {
			t.Errorf("%s: want pid and peer_pid %d, the parent's", line, parent)
		}
		if r.PeerUid == nil || int(*r.PeerUid) != os.Getuid() {
			t.Errorf("%s: want peer_uid %d", line, os.Getuid())
		}
		if r.WriterPid != from {
			t.Errorf("%s: writer_pid %d, but process %d logged it", line, r.WriterPid, from)
		}
		writers[r.WriterPid]++
	}
	if len(writers) != 2 || writers[parent] != 3 {
		t.Errorf("writers %v: want the parent %d and its child, 3 frames each", writers, parent)
	}
}

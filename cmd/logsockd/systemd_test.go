//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/logsock/logsock/internal/testenv"
)

// requireSystemd is the variable under which the tests of systemd's side
// fail, rather than skip, without systemd's tools (.ci/run sets it).
const requireSystemd = "LOGSOCK_REQUIRE_SYSTEMD"

// TestLogsockdSocketActivation: started by systemd-socket-activate, which
// listens on a TCP and a Unix socket and runs logsockd (LISTEN_FDS, no
// -listen) at the first connection, logsockd serves both sockets, that
// first connection included (it waited in the backlog); with -listen
// too, that socket as well. At exit it leaves the Unix socket's file,
// which is systemd's.
func TestLogsockdSocketActivation(t *testing.T) {
	activate := tool(t, "systemd-socket-activate", requireSystemd)
	for _, extra := range [][]string{nil, {"-listen", "tcp://127.0.0.1:0"}} {
		t.Run(fmt.Sprintf("listen=%d", len(extra)/2), func(t *testing.T) {
			t.Parallel()
			dir := shortDir(t)
			sock, out := filepath.Join(dir, "s.sock"), filepath.Join(dir, "out.jsonl")
			port, err := testenv.FreePort()
			if err != nil {
				t.Fatal(err)
			}
			tcp := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			args := append([]string{"-l", tcp, "-l", sock, "--fdname=tcp:unix", testenv.Program(t, "logsockd"),
				"-json", "-o", out}, extra...)
			c := startProc(t, nil, activate, args...)
			c.waitMatching(t, "Listening on ", 2) // systemd-socket-activate's

			if err := dial(t, "tcp://"+tcp, nil).Log("first, over TCP"); err != nil {
				t.Fatal(err)
			}
			addrs := c.listening(t, 2+len(extra)/2)
			for _, want := range []string{"tcp://" + tcp, "unix://" + sock} {
				if !slices.Contains(addrs, want) {
					t.Errorf("logsockd listens on %q, want %s among them", addrs, want)
				}
			}
			c.waitLine(t, "logsockd: socket activation: 2 listening sockets passed")
			msgs := []string{"first, over TCP", "over the Unix socket"}
			if err := dial(t, "unix://"+sock, nil).Log(msgs[1]); err != nil {
				t.Fatal(err)
			}
			if len(extra) > 0 {
				msgs = append(msgs, "over -listen")
				if err := dial(t, addrs[2], nil).Log(msgs[2]); err != nil {
					t.Fatal(err)
				}
			}
			lines := waitFileLines(t, c, out, len(msgs))
			for _, m := range msgs {
				if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, `"msg":"`+m+`"`) }) {
					t.Errorf("no record %q in %q", m, lines)
				}
			}
			c.sigterm(t, 0)
			if fi, err := os.Lstat(sock); err != nil || fi.Mode().Type() != os.ModeSocket {
				t.Errorf("%s: %v, %v; want systemd's socket left in place", sock, fi, err)
			}
		})
	}
}

// TestLogsockdSocketActivationRefusesDatagram: a datagram socket passed
// by systemd (a socket unit's ListenDatagram=) is not one logsockd can
// serve: it says so and exits 1, rather than serve nothing.
func TestLogsockdSocketActivationRefusesDatagram(t *testing.T) {
	t.Parallel()
	activate := tool(t, "systemd-socket-activate", requireSystemd)
	sock := filepath.Join(shortDir(t), "d.sock")
	c := startProc(t, nil, activate, "--datagram", "-l", sock, testenv.Program(t, "logsockd"), "-json")
	c.waitLine(t, "Listening on ")
	// The first datagram starts logsockd.
	conn, err := net.Dial("unixgram", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("wake up")); err != nil {
		t.Fatal(err)
	}
	if code := c.exitCode(t); code != 1 {
		t.Fatalf("exit status %d, want 1; stderr:\n%s", code, c.Stderr)
	}
	if want := "logsockd: socket activation: descriptor 3 (LISTEN_FDS 3): " + errNotListening.Error(); !strings.Contains(c.Stderr.String(), want) {
		t.Errorf("stderr:\n%s\nwant %q", c.Stderr, want)
	}
}

// notice is a datagram that a test's NOTIFY_SOCKET received, and the pid
// of its sender (SO_PASSCRED).
type notice struct {
	state string
	pid   int32
}

// listenNotify listens on a unixgram socket at name, a path or an
// abstract address (@name), as systemd's NOTIFY_SOCKET, and returns what
// arrives on it.
func listenNotify(t *testing.T, name string) <-chan notice {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1) }); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	ch := make(chan notice, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf, oob := make([]byte, 4096), make([]byte, 1024)
		for {
			n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
			if err != nil {
				return // closed
			}
			m := notice{state: string(buf[:n]), pid: -1}
			if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil && len(msgs) > 0 {
				if cred, err := unix.ParseUnixCredentials(&msgs[0]); err == nil {
					m.pid = cred.Pid
				}
			}
			ch <- m
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return ch
}

// nextNotice waits for the next datagram.
func nextNotice(t *testing.T, c *proc, ch <-chan notice) notice {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-c.Done:
		// A datagram sent before the exit is in the socket already, but
		// the reader may not have taken it yet: on a busy machine it did
		// not, once (stress run, STOPPING=1 under -race beside two hogs).
		select {
		case m := <-ch:
			return m
		case <-time.After(waitTimeout):
		}
		t.Fatalf("logsockd exited (%v) before the next sd_notify; stderr:\n%s", c.Err, c.Stderr)
	case <-time.After(waitTimeout):
		t.Fatalf("no sd_notify within %v; stderr:\n%s", waitTimeout, c.Stderr)
	}
	panic("unreachable")
}

// monotonicUsec returns CLOCK_MONOTONIC in microseconds.
func monotonicUsec(t *testing.T) int64 {
	t.Helper()
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return ts.Nano() / 1000
}

// TestLogsockdNotify: with NOTIFY_SOCKET (a path, or an abstract
// address), logsockd sends from its own pid (NotifyAccess=main) READY=1
// once it listens (a connection made at once succeeds); at SIGHUP,
// RELOADING=1 with the monotonic time, then READY=1 once the file is
// reopened; at SIGTERM, STOPPING=1; and nothing else.
func TestLogsockdNotify(t *testing.T) {
	for _, abstract := range []bool{false, true} {
		t.Run(fmt.Sprintf("abstract=%v", abstract), func(t *testing.T) {
			t.Parallel()
			dir := shortDir(t)
			name := filepath.Join(dir, "notify")
			if abstract {
				name = "@" + name // unique, as the directory is
			}
			ch := listenNotify(t, name)
			out := filepath.Join(dir, "out.jsonl")
			// Port 0, read back from logsockd: a port chosen free and closed
			// for it was taken by a test in parallel (CI: bind: address
			// already in use).
			c := startProc(t, []string{"NOTIFY_SOCKET=" + name}, testenv.Program(t, "logsockd"), "-json", "-listen", "tcp://127.0.0.1:0", "-o", out)
			cmd := c.Cmd
			pid := int32(cmd.Process.Pid)
			expect := func(want *regexp.Regexp) string {
				t.Helper()
				m := nextNotice(t, c, ch)
				if !want.MatchString(m.state) || m.pid != pid {
					t.Fatalf("sd_notify %q from pid %d, want %q from %d", m.state, m.pid, want, pid)
				}
				return m.state
			}

			expect(regexp.MustCompile(`^READY=1\nSTATUS=listening on 1 sockets$`))
			addr, _ := strings.CutPrefix(c.listening(t, 1)[0], "tcp://")
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatalf("READY=1, but: %v", err)
			}
			conn.Close()

			if err := os.Rename(out, out+".1"); err != nil {
				t.Fatal(err)
			}
			before := monotonicUsec(t)
			if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			state := expect(regexp.MustCompile(`^RELOADING=1\nMONOTONIC_USEC=\d+$`))
			usec, _ := strconv.ParseInt(strings.TrimPrefix(state, "RELOADING=1\nMONOTONIC_USEC="), 10, 64)
			if after := monotonicUsec(t); usec < before || usec > after {
				t.Errorf("MONOTONIC_USEC=%d, want between %d and %d", usec, before, after)
			}
			expect(regexp.MustCompile(`^READY=1$`))
			if _, err := os.Stat(out); err != nil {
				t.Errorf("READY=1 after SIGHUP, but the file is not reopened: %v", err)
			}

			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			expect(regexp.MustCompile(`^STOPPING=1$`))
			if code := c.exitCode(t); code != 0 {
				t.Fatalf("exit status %d; stderr:\n%s", code, c.Stderr)
			}
			select {
			case m := <-ch:
				t.Errorf("after STOPPING=1: %q", m.state)
			default:
			}
			if strings.Contains(c.Stderr.String(), "sd_notify") {
				t.Errorf("stderr:\n%s", c.Stderr)
			}
		})
	}
}

// TestSystemdUnits: logsockd.service and logsockd.socket pass
// systemd-analyze verify with nothing to say, the service's sandbox passes
// every check of systemd-analyze security that logsockd can, and the
// service's command line, run by systemd-socket-activate on the socket's
// sockets (paths moved into a temporary directory), serves them: a record
// sent lands in the file, and /healthz answers.
func TestSystemdUnits(t *testing.T) {
	t.Parallel()
	analyze := tool(t, "systemd-analyze", requireSystemd)
	activate := tool(t, "systemd-socket-activate", requireSystemd)
	bin := testenv.Program(t, "logsockd")
	dir := shortDir(t)
	units := map[string]string{}
	for _, name := range []string{"logsockd.service", "logsockd.socket"} {
		b, err := os.ReadFile(filepath.Join("systemd", name))
		if err != nil {
			t.Fatal(err)
		}
		// verify wants the program to exist.
		units[name] = strings.ReplaceAll(string(b), "/usr/local/bin/logsockd", bin)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(units[name]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	service, socket := filepath.Join(dir, "logsockd.service"), filepath.Join(dir, "logsockd.socket")
	out, err := exec.Command(analyze, "verify", service, socket).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// Each check of systemd-analyze security that the service fails must
	// be one that logsockd cannot pass.
	cannot := map[string]string{
		"PrivateNetwork=":                          "it serves sockets and forwards over TCP",
		"IPAddressDeny=":                           "its clients and relay are the operator's",
		"RestrictAddressFamilies=~AF_UNIX":         "it serves Unix sockets, and sd_notify is one",
		"RestrictAddressFamilies=~AF_(INET|INET6)": "it serves TCP",
		"SystemCallFilter=~@resources":             "the Go runtime raises RLIMIT_NOFILE with setrlimit",
		"ProcSubset=":                              "Go reads the listen backlog from /proc/sys/net/core/somaxconn",
		"RootDirectory=/RootImage=":                "a plain install",
		"DeviceAllow=":                             "what PrivateDevices= leaves",
		"UMask=":                                   "0027 leaves the file to a group of readers",
	}
	out, err = exec.Command(analyze, "security", "--offline=yes", "--json=short", service).Output()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v", err)
	}
	var checks []struct {
		Set      bool
		Name     string
		Exposure *string // "0.2", or null for a check passed
	}
	if err := json.Unmarshal(out, &checks); err != nil || len(checks) < 50 {
		t.Fatalf("systemd-analyze security --json=short: %v, %d checks\n%s", err, len(checks), out)
	}
	for _, c := range checks {
		if !c.Set && c.Exposure != nil && cannot[c.Name] == "" {
			t.Errorf("systemd-analyze security: logsockd.service fails %s", c.Name)
		}
	}

	execStart := unitValues(t, units["logsockd.service"], "ExecStart")
	listen := unitValues(t, units["logsockd.socket"], "ListenStream")
	if len(execStart) != 1 || len(listen) != 1 {
		t.Fatalf("ExecStart %q, ListenStream %q: want one of each", execStart, listen)
	}
	sock := filepath.Join(dir, "s.sock")
	args := []string{"-l", sock}
	var metrics string
	for _, a := range strings.Fields(execStart[0]) {
		switch {
		case strings.HasPrefix(a, "/var/log/logsock/"): // LogsDirectory=logsock
			a = filepath.Join(dir, filepath.Base(a))
		case strings.HasPrefix(a, "127.0.0.1:"): // -metrics
			port, err := testenv.FreePort()
			if err != nil {
				t.Fatal(err)
			}
			a = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			metrics = a
		}
		args = append(args, a)
	}
	c := startProc(t, nil, activate, args...)
	c.waitLine(t, "Listening on ")
	if err := dial(t, "unix://"+sock, nil).Log("by the unit's command line"); err != nil {
		t.Fatal(err)
	}
	c.listening(t, 1)
	files, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if len(files) != 1 {
		t.Fatalf("files %q, want the one -o names", files)
	}
	if lines := waitFileLines(t, c, files[0], 1); !strings.Contains(lines[0], `"msg":"by the unit's command line"`) {
		t.Errorf("line %q", lines[0])
	}
	if metrics == "" {
		t.Fatalf("ExecStart %q has no -metrics", execStart[0])
	}
	c.waitLine(t, "logsockd: metrics on ")
	if code, _, body := httpGet(t, "http://"+metrics+"/healthz"); code != 200 {
		t.Errorf("/healthz: %d %s", code, body)
	}
	c.sigterm(t, 0)
}

// unitValues returns the values of key in a unit file's text, comments
// left out.
func unitValues(t *testing.T, unit, key string) []string {
	t.Helper()
	var vals []string
	for line := range strings.Lines(unit) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+"="); ok {
			vals = append(vals, v)
		}
	}
	if len(vals) == 0 {
		t.Errorf("no %s= in the unit", key)
	}
	return vals
}

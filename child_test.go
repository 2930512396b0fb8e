//go:build unix

package logsock_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/logsocktest"
	"github.com/logsock/logsock/internal/proctest"
	"golang.org/x/sys/unix"
)

// The inheritance tests run this binary again as the child process, which
// plays its role before the tests' main (TestMain) begins.
func init() {
	if role := proctest.ChildRole(); role != "" {
		os.Exit(runChild(role))
	}
}

// runChild is main for a child process: it adopts the inherited connection
// and plays its role. It returns the exit code.
func runChild(role string) int {
	if os.Getenv("LOGSOCK_TEST_NOLOCK") == "1" {
		logsock.SetFrameLock(false)
	}
	switch role {
	case "receive":
		return childReceive(os.Getenv("LOGSOCK_TEST_PATH"))
	case "load":
		return childLoad()
	case "stray":
		return childStray()
	case "acks":
		return childAcks()
	}
	cfg := &logsock.Config{PeekInterval: time.Nanosecond, MinBackoff: time.Millisecond}
	cfg.Batching = os.Getenv("LOGSOCK_TEST_BATCHING") == "true"
	ls, err := logsock.FromEnv(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	defer ls.Close()
	switch role {
	case "commands":
		return childCommands(ls)
	case "stress":
		return childStress(ls)
	}
	fmt.Fprintln(os.Stderr, "child: unknown role", role)
	return 2
}

// childCommands serves the commands "log TEXT", "stats", "shared", "die"
// (begin a frame, keep the lock and wait to be killed) and "fds" (check
// that no descriptor of the socket would leak into a grandchild).
func childCommands(ls *logsock.LogSocket) int {
	return proctest.ServeCommands(map[string]func(string) (string, error){
		"log":    func(arg string) (string, error) { return "", ls.Log(arg) },
		"stats":  func(string) (string, error) { return fmt.Sprintf("%+v", ls.Stats()), nil },
		"shared": func(string) (string, error) { return strconv.FormatBool(ls.Shared()), nil },
		"die": func(string) (string, error) {
			if err := ls.BeginFrameAndStop([]byte{0xff, 0, 0, 0, 'h', 'a', 'l', 'f'}); err != nil {
				return "", err
			}
			fmt.Println("ok")
			select {} // until killed
		},
		"fds": func(arg string) (string, error) { return "", checkNoLeak(arg) },
	})
}

// childReceive connects to path, receives a connection with ReceiveConn,
// logs on it and exits.
func childReceive(path string) int {
	c, err := net.Dial("unix", path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	defer c.Close()
	ls, err := logsock.ReceiveConn(c.(*net.UnixConn), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	defer ls.Close()
	if err := ls.Log(fmt.Sprint("received by ", os.Getpid())); err != nil || !ls.Shared() {
		fmt.Fprintln(os.Stderr, "child:", err, ls.Shared())
		return 1
	}
	return 0
}

// strayReport is what the "stray" child saw: FromEnv's error, and the
// state of descriptors 3 (a file of the test's, which the contract never
// names rightly), 4 and 5 (the socket and lock file that Start passed)
// after it.
type strayReport struct {
	Err   string
	Stale bool   // errors.Is(err, ErrStaleFD)
	Var   string // the *EnvError's variable
	Left  []string
	FDs   map[int]fdState
}

type fdState struct {
	Open, CloseOnExec bool
	ID                string // dev:ino
	WriteErr          string // of a line written on descriptor 3 only
}

// childStray sets the variables of LOGSOCK_TEST_SET (a JSON object) over
// those that Start set, calls FromEnv (with a bad Config if
// LOGSOCK_TEST_BADCFG is set), and prints a strayReport in JSON.
func childStray() int {
	var set map[string]string
	if err := json.Unmarshal([]byte(os.Getenv("LOGSOCK_TEST_SET")), &set); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	for k, v := range set {
		os.Setenv(k, v)
	}
	var cfg *logsock.Config
	if os.Getenv("LOGSOCK_TEST_BADCFG") != "" {
		cfg = &logsock.Config{BufferBytes: -1}
	}
	var rep strayReport
	ls, err := logsock.FromEnv(cfg)
	if err == nil {
		ls.Close()
	} else {
		rep.Err = err.Error()
	}
	rep.Stale = errors.Is(err, logsock.ErrStaleFD)
	if ee, ok := errors.AsType[*logsock.EnvError](err); ok {
		rep.Var = ee.Var
	}
	for _, k := range []string{envNetwork, envAddress, envOrder,
		envFD, envSocket, envLockFD} {
		if _, ok := os.LookupEnv(k); ok {
			rep.Left = append(rep.Left, k)
		}
	}
	rep.FDs = map[int]fdState{}
	for fd := 3; fd <= 5; fd++ {
		var st fdState
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		var sys unix.Stat_t
		if err == nil && unix.Fstat(fd, &sys) == nil {
			st.Open, st.CloseOnExec = true, flags&unix.FD_CLOEXEC != 0
			st.ID = fmt.Sprintf("%d:%d", uint64(sys.Dev), uint64(sys.Ino))
		}
		if fd == 3 {
			if _, err := unix.Write(fd, []byte(strayLine)); err != nil {
				st.WriteErr = err.Error()
			}
		}
		rep.FDs[fd] = st
	}
	if err := json.NewEncoder(os.Stdout).Encode(rep); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	return 0
}

// strayLine is what the "stray" child writes on descriptor 3.
const strayLine = "written by the child after FromEnv\n"

// checkNoLeak runs a grandchild and checks that it did not inherit the
// socket whose identity is "dev:ino".
func checkNoLeak(id string) error {
	_, ino, _ := strings.Cut(id, ":")
	out, err := exec.Command("/bin/sh", "-c", `for f in /proc/$$/fd/*; do readlink "$f"; done; true`).Output()
	if err != nil {
		return err
	}
	if strings.Contains(string(out), "socket:["+ino+"]") {
		return fmt.Errorf("the grandchild inherited the socket: %s", out)
	}
	if !strings.Contains(string(out), "/proc/") && !strings.Contains(string(out), "pipe:") {
		return fmt.Errorf("the grandchild's descriptors were not listed: %q", out)
	}
	return nil
}

// stressBlock is the source of frame bodies; every process makes the same.
var stressBlock = func() []byte {
	b := make([]byte, 2<<20)
	rand.NewChaCha8([32]byte{42}).Read(b)
	return b
}()

// stressSizes is the sequence of frame sizes each stress writer sends.
func stressSizes(n int) []int {
	sizes := make([]int, n)
	for i := range sizes {
		switch {
		case i%300 == 299:
			sizes[i] = 1 << 20
		case i%25 == 24:
			sizes[i] = 64 << 10
		default:
			sizes[i] = 100
		}
	}
	return sizes
}

// stressFrame fills buf with frame seq of writer pid: pid, seq, then a
// window of stressBlock chosen by both.
func stressFrame(buf []byte, pid, seq int) []byte {
	binary.LittleEndian.PutUint32(buf, uint32(pid))
	binary.LittleEndian.PutUint32(buf[4:], uint32(seq))
	off := (pid*7919 + seq*104729) % (len(stressBlock) - len(buf))
	copy(buf[8:], stressBlock[off:])
	return buf
}

const stressFrames = 900

func childStress(ls *logsock.LogSocket) int {
	if err := stressWrite(ls, os.Getpid()); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

func stressWrite(ls *logsock.LogSocket, pid int) error {
	buf := make([]byte, 1<<20)
	for seq, size := range stressSizes(stressFrames) {
		if err := ls.Log(string(stressFrame(buf[:size], pid, seq))); err != nil {
			return fmt.Errorf("frame %d: %w", seq, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return ls.Flush(ctx)
}

// childAcks adopts what a v2 parent passed (the address: FromEnv makes a
// connection and a session of its own), logs one line, and exits once it
// is acknowledged.
func childAcks() int {
	ls, err := logsock.FromEnv(nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	if err := ls.LogLevel(logsock.LevelNotice, fmt.Sprint("child ", os.Getpid())); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	if err := ls.Close(); err != nil || ls.Stats().Acked != 1 {
		fmt.Fprintln(os.Stderr, "child:", err, ls.Stats())
		return 1
	}
	return 0
}

// TestAcksChildOwnSession: a child started by a v2 parent gets the
// address, not the socket, and connects with a session of its own, its
// own pid, and the parent's tag (issue 19: acknowledgements come back on
// the socket, which two processes cannot share).
func TestAcksChildOwnSession(t *testing.T) {
	t.Parallel()
	sink := logsocktest.NewSink()
	addr := logsocktest.Serve(t, "unix", sink.Server())
	ls, err := logsock.New("unix", addr, &logsock.Config{Acks: true, Tag: "parent"})
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	if err := ls.Log("parent"); err != nil {
		t.Fatal(err)
	}
	flush(t, ls)
	cmd := proctest.ChildCommand("acks")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := ls.Start(cmd); err != nil {
		t.Fatal(err)
	}
	if len(cmd.ExtraFiles) != 0 {
		t.Errorf("Start passed %d descriptors to a v2 child; want none", len(cmd.ExtraFiles))
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v: %s", err, stderr.String())
	}
	recs := sink.WaitRecords(t, 2)
	parent, child := recs[0], recs[1]
	if child.Pid != int32(cmd.Process.Pid) || child.Session == parent.Session || child.Session == (logsock.SessionID{}) ||
		child.Tag != "parent" || child.Level != logsock.LevelNotice || child.Seq != 1 {
		t.Errorf("child's record %+v; parent's %+v: want the child's pid, a session of its own, tag parent, level notice, seq 1", child.Origin, parent.Origin)
	}
}

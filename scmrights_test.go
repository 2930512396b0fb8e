//go:build unix

package logsock_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/logsocktest"
	"github.com/logsock/logsock/internal/proctest"
	"golang.org/x/sys/unix"
)

// TestSendConnToRunningProcess: a running process receives the connection
// over a Unix socket and logs on it, under the parent's handshake.
func TestSendConnToRunningProcess(t *testing.T) {
	col := logsocktest.NewFakeCollector(t, "tcp", logsocktest.FakeDecode)
	ls := dial(t, "tcp", col.Addr, nil)
	ls.Log("sender")
	path := logsocktest.SocketPath(t)
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cmd := proctest.ChildCommand("receive", "LOGSOCK_TEST_PATH="+path)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := ls.SendConn(c.(*net.UnixConn)); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("receiver: %v", err)
	}
	recs := col.WaitRecords(t, 2)
	want := fmt.Sprint("received by ", cmd.Process.Pid)
	if string(recs[1].Msg) != want || recs[1].Conn != recs[0].Conn || recs[1].Pid != int32(os.Getpid()) {
		t.Errorf("records %+v: want %q on the sender's connection", recs, want)
	}
}

// TestReceiveConnBadMessages: descriptors the kernel had to drop
// (MSG_CTRUNC) are an error; extra descriptors are closed; nothing leaks.
func TestReceiveConnBadMessages(t *testing.T) {
	l := logsocktest.Listen(t, "unix")
	defer l.Close()
	ls := dial(t, "unix", l.Addr().String(), nil)
	sock, lock := dupOwn(t, ls)
	body := receiveBody(t, ls)

	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	null := int(devnull.Fd())
	for _, tc := range []struct {
		name    string
		fds     []int
		wantErr string
	}{
		{"truncated", append([]int{sock, lock}, repeat(null, 40)...), "MSG_CTRUNC"},
		{"one fd", []int{sock}, "want 2"},
		{"no fds", nil, "want 2"},
		{"extra fd", []int{sock, lock, null}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := pairT(t)
			before := openFDs(t)
			var oob []byte
			if len(tc.fds) > 0 {
				oob = unix.UnixRights(tc.fds...)
			}
			if _, _, err := a.WriteMsgUnix(body, oob, nil); err != nil {
				t.Fatal(err)
			}
			got, err := logsock.ReceiveConn(b, nil)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ReceiveConn: %v, want an error with %q", err, tc.wantErr)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if err := got.Log("via extra"); err != nil {
					t.Fatal(err)
				}
				got.Close()
			}
			checkNoNewFDs(t, before, "ReceiveConn")
		})
	}
}

func repeat(fd, n int) []int {
	fds := make([]int, n)
	for i := range fds {
		fds[i] = fd
	}
	return fds
}

// receiveBody returns the body of the message that SendConn sends.
func receiveBody(t *testing.T, ls *logsock.LogSocket) []byte {
	t.Helper()
	body, fds := receiveRaw(t, ls)
	for _, fd := range fds {
		unix.Close(fd)
	}
	return body
}

// TestReceiveConnBadVariables: each variable of SendConn's message is
// checked as FromEnv checks the environment, with an *EnvError that names
// it; the descriptors received, this process's own, are closed whatever
// the failure (issue 17).
func TestReceiveConnBadVariables(t *testing.T) {
	l := logsocktest.Listen(t, "unix")
	defer l.Close()
	ls := dial(t, "unix", l.Addr().String(), nil)
	sock, lock := dupOwn(t, ls)
	vars := map[string]string{}
	for kv := range strings.SplitSeq(string(receiveBody(t, ls)), "\x00") {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	for _, tc := range []struct {
		name      string
		set       map[string]string
		cfg       *logsock.Config
		wantVar   string // "" for the Config's error
		wantStale bool
	}{
		{"bad network", map[string]string{envNetwork: "udp"}, nil, envNetwork, false},
		{"empty address", map[string]string{envAddress: ""}, nil, envAddress, false},
		{"bad tcp port", map[string]string{envNetwork: "tcp", envAddress: "127.0.0.1:99999"}, nil, envAddress, false},
		{"bad order", map[string]string{envOrder: "middle"}, nil, envOrder, false},
		{"no socket id", map[string]string{envSocket: ""}, nil, envSocket, true},
		{"bad socket id", map[string]string{envSocket: "1:2:3"}, nil, envSocket, true},
		{"wrong socket", map[string]string{envSocket: "1:1"}, nil, "", true},
		{"bad cfg", nil, &logsock.Config{BufferBytes: -1}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := pairT(t)
			var kvs []string
			for k, v := range vars {
				if nv, ok := tc.set[k]; ok {
					v = nv
				}
				kvs = append(kvs, k+"="+v)
			}
			before := openFDs(t)
			if _, _, err := a.WriteMsgUnix([]byte(strings.Join(kvs, "\x00")), unix.UnixRights(sock, lock), nil); err != nil {
				t.Fatal(err)
			}
			got, err := logsock.ReceiveConn(b, tc.cfg)
			if err == nil {
				got.Close()
				t.Fatalf("ReceiveConn succeeded; want an error naming %q", tc.wantVar)
			}
			var gotVar string
			if ee, ok := errors.AsType[*logsock.EnvError](err); ok {
				gotVar = ee.Var
			}
			if gotVar != tc.wantVar || !strings.Contains(err.Error(), tc.wantVar) || errors.Is(err, logsock.ErrStaleFD) != tc.wantStale {
				t.Errorf("ReceiveConn: %v (EnvError for %q); want one naming %q, ErrStaleFD %v", err, gotVar, tc.wantVar, tc.wantStale)
			}
			checkNoNewFDs(t, before, "ReceiveConn")
		})
	}
}

//go:build unix

package logsock_test

// Interoperability with the article's programs: its Python client
// (testdata/article_client.py, a faithful copy, bugs included) and a
// Python reading of its C# server (testdata/article_server.py, written
// from the wire format alone). cmd/logsockd's tests run the client
// against logsockd.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/logsocktest"
	"github.com/logsock/logsock/internal/proctest"
	"github.com/logsock/logsock/internal/testenv"
)

// checkRecords checks that recs are msgs, in order, on one connection
// whose handshake named pid.
func checkRecords(t *testing.T, recs []logsock.Record, pid int, msgs []string) {
	t.Helper()
	if len(recs) != len(msgs) {
		t.Errorf("got %d records, want %d", len(recs), len(msgs))
	}
	for i, r := range recs {
		if int(r.Pid) != pid {
			t.Errorf("record %d: pid %d, want the Python process's %d", i, r.Pid, pid)
		}
		if r.Conn != recs[0].Conn {
			t.Errorf("record %d: conn %d, want %d", i, r.Conn, recs[0].Conn)
		}
		if i < len(msgs) && string(r.Msg) != msgs[i] {
			t.Errorf("record %d: msg %q, want %q", i, r.Msg, msgs[i])
		}
	}
}

func TestInteropArticleClientToServer(t *testing.T) {
	t.Parallel()
	py := testenv.Python(t)

	for _, network := range []string{"tcp", "unix"} {
		t.Run("ascii/"+network, func(t *testing.T) {
			s := logsocktest.NewSink()
			addr := logsocktest.Serve(t, network, s.Server())
			// The article's server output, and an empty message.
			msgs := []string{"current pid: 17120", "current pid: 17121", ""}
			p := proctest.Start(t, py, logsocktest.ArticleClientArgs(t, network, addr, msgs)...)
			p.MustExit(t)

			// ConnClosed runs after the connection's last Handler call.
			if ends := s.WaitEnds(t, 1); ends[0] != nil {
				t.Errorf("connection ended with %v, want a clean end", ends[0])
			}
			checkRecords(t, s.WaitRecords(t, 0), p.Pid(), msgs)
		})
	}

	msgs := []string{"before", logsocktest.NonASCII, "é", "after"}

	t.Run("non-ascii/codepoints", func(t *testing.T) {
		s := logsocktest.NewSink()
		srv := s.Server()
		srv.CodePoints = true
		addr := logsocktest.Serve(t, "tcp", srv)
		p := proctest.Start(t, py, logsocktest.ArticleClientArgs(t, "tcp", addr, msgs)...)
		p.MustExit(t)

		if ends := s.WaitEnds(t, 1); ends[0] != nil {
			t.Errorf("connection ended with %v, want a clean end", ends[0])
		}
		checkRecords(t, s.WaitRecords(t, 0), p.Pid(), msgs)
	})

	t.Run("non-ascii/bytes", func(t *testing.T) {
		// The article's client sends len(text), a count of code points,
		// then the UTF-8 bytes. For logsocktest.NonASCII that is a header of 10 and
		// 25 bytes: a byte-counting reader takes the first 10 bytes
		// ("로그 메") as the message and reads the next 4 ("시" and the
		// lead byte of "지", all >= 0x80) as a frame header, a negative
		// int32, so the Server closes the connection and "é" and
		// "after" are lost. This is why Server.CodePoints exists.
		s := logsocktest.NewSink()
		addr := logsocktest.Serve(t, "tcp", s.Server())
		p := proctest.Start(t, py, logsocktest.ArticleClientArgs(t, "tcp", addr, msgs)...)

		ends := s.WaitEnds(t, 1)
		// The client may or may not finish its sends before the Server
		// closes (then it fails with EPIPE or ECONNRESET): either is fine.
		if err := p.Wait(t); err != nil {
			t.Logf("article client: %v: %s", err, strings.TrimSpace(p.Stderr.String()))
		}

		n := utf8.RuneCountInString(logsocktest.NonASCII)
		checkRecords(t, s.WaitRecords(t, 0), p.Pid(), []string{msgs[0], logsocktest.NonASCII[:n]})
		var pe *logsock.ProtocolError
		if !errors.As(ends[0], &pe) || !errors.Is(ends[0], logsock.ErrNegativeLength) {
			t.Fatalf("connection ended with %v, want a *ProtocolError wrapping ErrNegativeLength", ends[0])
		}
		if want := []byte(logsocktest.NonASCII[n : n+logsock.HeaderLen]); pe.Part != "frame header" || !bytes.Equal(pe.Data, want) {
			t.Errorf("ProtocolError %s %q, want frame header %q (the middle of the text)", pe.Part, pe.Data, want)
		}
		t.Logf("byte mode, as expected: %v", ends[0])
	})
}

// serverRecord is one line of article_server.py's output.
type serverRecord struct {
	Pid *int64  `json:"pid"`
	Msg *string `json:"msg"`
}

// startArticleServer runs article_server.py with args and returns it with
// the network and address it listens on.
func startArticleServer(t *testing.T, args ...string) (p *proctest.Proc, network, addr string) {
	t.Helper()
	p = proctest.Start(t, testenv.Python(t), append([]string{logsocktest.Testdata(t, "article_server.py")}, args...)...)
	first := p.WaitStdout(t, 1)[0]
	if port, ok := strings.CutPrefix(first, "port "); ok {
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			t.Fatalf("article server: first line %q: %v", first, err)
		}
		return p, "tcp", net.JoinHostPort("127.0.0.1", port)
	}
	if path, ok := strings.CutPrefix(first, "unix "); ok {
		return p, "unix", path
	}
	t.Fatalf("article server: first line %q, want \"port N\" or \"unix PATH\"", first)
	return nil, "", ""
}

// serverRecords parses the records that article_server.py printed after
// its first line.
func serverRecords(t *testing.T, p *proctest.Proc) []serverRecord {
	t.Helper()
	var recs []serverRecord
	for i, line := range p.Stdout.Lines()[1:] {
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		var r serverRecord
		if err := dec.Decode(&r); err != nil || r.Pid == nil || r.Msg == nil {
			t.Fatalf("article server line %d: %q: want {\"pid\": N, \"msg\": S} (%v)", i+1, line, err)
		}
		recs = append(recs, r)
	}
	return recs
}

func TestInteropGoClientToArticleServer(t *testing.T) {
	t.Parallel()
	testenv.Python(t)
	msgs := []string{
		fmt.Sprintf("current pid: %d", os.Getpid()),
		logsocktest.NonASCII,
		"",
		"é",
		strings.Repeat("가", 30000), // 90 000 bytes: several reads on the server
		"after",
	}

	for _, tc := range []struct {
		name string
		args []string
		cfg  *logsock.Config
	}{
		{name: "little", args: []string{"--order", "little"}}, // nil Config: the default order
		{name: "big", args: []string{"--order", "big"}, cfg: &logsock.Config{Order: logsock.BigEndian}},
		{name: "little/unix", args: []string{"--unix", logsocktest.SocketPath(t)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, network, addr := startArticleServer(t, tc.args...)
			ls, err := logsock.Dial(network, addr, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range msgs {
				if err := ls.Log(m); err != nil {
					t.Fatalf("Log(%.20q): %v", m, err)
				}
			}
			if err := ls.Close(); err != nil {
				t.Fatal(err)
			}
			p.MustExit(t) // it exits 0 only at a clean end at a frame boundary

			recs := serverRecords(t, p)
			var got []string
			for i, r := range recs {
				if *r.Pid != int64(os.Getpid()) {
					t.Errorf("record %d: pid %d, want %d", i, *r.Pid, os.Getpid())
				}
				got = append(got, *r.Msg)
			}
			if !slices.Equal(got, msgs) {
				t.Errorf("article server read %d messages %.40q, want %d %.40q", len(got), got, len(msgs), msgs)
			}
		})
	}

	// The reference server must tell a clean end from a truncated frame,
	// or its exit status above would prove nothing.
	t.Run("truncated", func(t *testing.T) {
		p, network, addr := startArticleServer(t)
		c, err := net.Dial(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		b := logsock.AppendHandshake(nil, logsock.LittleEndian, 42)
		b = logsock.AppendFrame(b, logsock.LittleEndian, []byte("whole"))
		b = logsock.AppendFrame(b, logsock.LittleEndian, []byte("cut short"))
		if _, err := c.Write(b[:len(b)-3]); err != nil {
			t.Fatal(err)
		}
		c.Close()
		var ee *exec.ExitError
		if err := p.Wait(t); !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("article server: %v, want exit status 1", err)
		}
		if !strings.Contains(p.Stderr.String(), "truncated") {
			t.Errorf("article server stderr %q, want it to say truncated", p.Stderr)
		}
		if recs := serverRecords(t, p); len(recs) != 1 || *recs[0].Pid != 42 || *recs[0].Msg != "whole" {
			t.Errorf("article server records %+v, want only pid 42 \"whole\"", recs)
		}
	})
}

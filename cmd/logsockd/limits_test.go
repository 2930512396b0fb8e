//go:build unix

package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logsock/logsock/internal/testenv"
)

// TestLogsockdHeldSlots is issue 20's break 1 against the daemon: every
// slot of -max-conns held by connections that sent a handshake and
// nothing more, then logsock-cat sends 1,000 lines from the same address
// (127.0.0.1). With the per-peer limit at -max-conns, logsock-cat's
// connection waits in the backlog, and its lines arrive once the held
// connections go; with the default (half of -max-conns), the held
// connections past half are refused, and so is logsock-cat's, whose lines
// arrive anyway, read from its refused connections. Either way none is
// lost, and logsock-cat exits 0. (Accepted and closed at once, as before,
// none arrived, and logsock-cat exited 0 all the same.)
func TestLogsockdHeldSlots(t *testing.T) {
	const slots, lines = 20, 1000
	for _, tc := range []struct {
		name    string
		args    []string
		refused int // held connections refused
	}{
		{"backlog", []string{"-max-conns-per-peer", fmt.Sprint(slots)}, 0},
		{"per-peer default", nil, slots / 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.jsonl")
			p, printed := startLogsockd(t, append([]string{"-listen", "tcp://127.0.0.1:0", "-json", "-o", out,
				"-max-conns", fmt.Sprint(slots)}, tc.args...)...)
			addr := strings.TrimPrefix(printed, "tcp://")
			var held []net.Conn
			for range slots {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				if _, err := c.Write(binary.LittleEndian.AppendUint32(nil, 1)); err != nil {
					t.Fatal(err)
				}
				held = append(held, c)
			}
			const refusal = "closed after 0 frames: conn_limit"
			if tc.refused > 0 {
				p.waitMatching(t, refusal, tc.refused)
			}

			var input strings.Builder
			for i := range lines {
				fmt.Fprintf(&input, "line %d\n", i)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cat := exec.CommandContext(ctx, testenv.Program(t, "logsock-cat"), "-addr", addr, "-timeout", "30s")
			cat.Stdin = strings.NewReader(input.String())
			if out, err := cat.CombinedOutput(); err != nil {
				t.Fatalf("logsock-cat: %v\n%s", err, out)
			}
			for _, c := range held {
				c.Close() // in the backlog case, room for logsock-cat's connection
			}
			waitFileLines(t, p, out, lines)
			p.sigterm(t, 0)
			if n := len(p.matching(refusal)); n != tc.refused {
				t.Errorf("%d held connections refused, want %d", n, tc.refused)
			}
			checkRun(t, "logsock-cat's lines", seqMsgs(t, out)["line"], 0, lines-1)
		})
	}
}

//go:build unix

package faultlab

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"
)

// TestLineServerRestart checks that a LineServer keeps its lines across a
// restart on the same address, and that Stop closes what is open.
func TestLineServerRestart(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			s, err := NewLineServer(network)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.Close)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			for run := range 2 {
				if err := s.Start(); err != nil {
					t.Fatal(err)
				}
				c, err := net.Dial(network, s.Address)
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(c, "%s\n", Message(run, 20))
				if err := s.Wait(ctx, "a line", func(lines, _ int) bool { return lines == run+1 }); err != nil {
					t.Fatal(err)
				}
				s.Stop()
				// The server closed the connection: the client reads EOF.
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
					t.Errorf("read after Stop: %d, %v; want EOF", n, err)
				}
				c.Close()
			}
			if got := s.Lines(); len(got) != 2 || got[1] != Message(1, 20) {
				t.Errorf("lines %q", got)
			}
		})
	}
}

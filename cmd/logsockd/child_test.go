//go:build unix

package main

import (
	"fmt"
	"os"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/proctest"
)

// The forwarding tests run this test binary again as a child that
// inherits a LogSocket's connection and logs on command, as a pre-fork
// server's worker would; it plays its role before TestMain begins.
func init() {
	if role := proctest.ChildRole(); role != "" {
		os.Exit(runChild(role))
	}
}

// runChild is main for the child, in the role "lognum": it adopts the
// inherited connection, in batching mode, and serves "lognum FROM TO"
// (log forwardMsg("child", seq) for each seq, then flush). It returns the
// exit code.
func runChild(role string) int {
	if role != "lognum" {
		fmt.Fprintln(os.Stderr, "child: unknown role", role)
		return 2
	}
	ls, err := logsock.FromEnv(&logsock.Config{Batching: true, PeekInterval: time.Nanosecond, MinBackoff: time.Millisecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	defer ls.Close()
	return proctest.ServeCommands(map[string]func(string) (string, error){
		"lognum": func(arg string) (string, error) { return "", logNumbered(ls, "child", arg) },
	})
}

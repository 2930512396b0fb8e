//go:build !linux

package logsock_test

import (
	"net"
	"testing"
	"time"
)

// waitServing: elsewhere the Server reads no credentials, so there is
// nothing to wait for.
func waitServing(testing.TB, net.Listener) {}

// windowClosed: only Linux's TCP_INFO tells the window; elsewhere it
// reports it closed, and the callers rely on what else they check.
func windowClosed(net.Conn) (bool, error) { return true, nil }

// queueWait: only Linux tells how long the process waited for a CPU;
// elsewhere it reports none.
func queueWait(testing.TB) time.Duration { return 0 }

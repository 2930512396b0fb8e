//go:build !linux

package logsock_test

import (
	"testing"
	"time"
)

// queueWait: only Linux tells how long the process waited for a CPU;
// elsewhere it reports none.
func queueWait(testing.TB) time.Duration { return 0 }

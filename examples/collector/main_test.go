//go:build unix

package main

import (
	"testing"

	"github.com/logsock/logsock/internal/logsocktest"
	"github.com/logsock/logsock/internal/proctest"
)

func TestMain(m *testing.M) { logsocktest.Main(m) }

// TestCommandLine: -h starts with a synopsis and an example; a stray
// argument is refused with exit status 2.
func TestCommandLine(t *testing.T) {
	t.Parallel()
	proctest.CheckCommandLine(t, "collector")
}

// TestCopyOut: the program imports nothing of internal/, so that it
// builds when copied out of the repository.
func TestCopyOut(t *testing.T) {
	t.Parallel()
	proctest.CheckCopyOut(t, ".")
}

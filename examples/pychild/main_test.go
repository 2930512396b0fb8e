//go:build unix

package pychild_test

import (
	"testing"

	"github.com/logsock/logsock/internal/logsocktest"
	"github.com/logsock/logsock/internal/proctest"
)

func TestMain(m *testing.M) { logsocktest.Main(m) }

// TestCopyOut: the package imports nothing of internal/, so that it
// builds when copied out of the repository.
func TestCopyOut(t *testing.T) {
	t.Parallel()
	proctest.CheckCopyOut(t, ".")
}

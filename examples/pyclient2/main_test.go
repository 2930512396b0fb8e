//go:build unix

package pyclient2_test

import (
	"testing"

	"github.com/logsock/logsock/internal/logsocktest"
)

func TestMain(m *testing.M) { logsocktest.Main(m) }

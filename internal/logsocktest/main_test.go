package logsocktest_test

import (
	"testing"

	"github.com/logsock/logsock/internal/logsocktest"
)

func TestMain(m *testing.M) { logsocktest.Main(m) }

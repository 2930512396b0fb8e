package logsock_test

import (
	"os"
	"testing"

	"github.com/logsock/logsock/internal/testenv"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The inheritance tests run this binary again as the child process.
	if role := os.Getenv(childRoleEnv); role != "" {
		os.Exit(runChild(role))
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		testenv.RemovePrograms()
		os.Exit(code)
	}))
}

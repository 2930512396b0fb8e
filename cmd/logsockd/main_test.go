//go:build unix

package main

import (
	"os"
	"testing"

	"github.com/logsock/logsock/internal/testenv"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		testenv.RemovePrograms()
		os.Exit(code)
	}))
}

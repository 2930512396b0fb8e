package testenv

import (
	"os/exec"
	"syscall"
)

// SetDeathSignal makes the kernel kill cmd's process if the process that
// started it dies without stopping it (a test binary that panics or times
// out, a bench that is interrupted), so that no child (rsyslogd, a
// collector, a receiver) is left running on a test port. It replaces
// cmd.SysProcAttr; call it before cmd.Start.
func SetDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

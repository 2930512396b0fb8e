package rsyslogtest

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes the kernel kill rsyslogd if the process that
// started it dies without Close (a test binary that panics or times out),
// so that no rsyslogd is left listening on a test port.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

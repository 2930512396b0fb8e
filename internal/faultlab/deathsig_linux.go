package faultlab

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes the kernel kill the child if the harness dies
// without cleaning up (a test binary that panics or times out), so that no
// collector is left running on a test port.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

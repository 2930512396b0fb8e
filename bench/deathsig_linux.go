package main

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes the kernel kill a receiver if the bench dies
// without stopping it.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

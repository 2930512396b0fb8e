//go:build unix && !linux

package faultlab

import "os/exec"

// setDeathSignal does nothing where there is no parent-death signal: the
// children are killed by Close, as everywhere.
func setDeathSignal(*exec.Cmd) {}

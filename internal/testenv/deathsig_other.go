//go:build !linux

package testenv

import "os/exec"

// SetDeathSignal does nothing: only Linux has a parent-death signal. The
// callers stop their children themselves, as everywhere.
func SetDeathSignal(*exec.Cmd) {}

package logsock

import (
	"os"

	"golang.org/x/sys/unix"
)

// anonymousFile returns a close-on-exec memfd: a file with no name that
// lives as long as a descriptor of it does.
func anonymousFile() (*os.File, error) {
	fd, err := unix.MemfdCreate("logsock-lock", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("memfd_create", err)
	}
	return os.NewFile(uintptr(fd), "logsock-lock"), nil
}

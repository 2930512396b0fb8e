//go:build unix && !linux

package logsock

import "os"

// anonymousFile returns an unlinked temporary file, close-on-exec (as
// os.CreateTemp makes it): where there is no memfd, the nearest thing.
func anonymousFile() (*os.File, error) {
	f, err := os.CreateTemp("", "logsock-lock")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	return f, nil
}

package logsock

// The collector's socket calls on Windows: no credentials, and no accept
// that does not wait.

import "errors"

// credsSupported: on Windows the collector does not learn who connected or
// who wrote, so the Records' peer and writer fields stay 0, as on the BSDs.
const credsSupported = false

func peerCred(int) (pid int32, uid, gid uint32, err error) {
	return 0, 0, 0, errors.ErrUnsupported
}

func passCred(int) error { return errors.ErrUnsupported }

// acceptNow fails: Go opens a listener's socket in blocking mode, for
// overlapped AcceptEx, so there is no accept that does not wait. Shutdown
// then leaves the connections still queued to be reset when the listener
// closes (see Server.Shutdown).
func acceptNow(int) (int, error) { return -1, errors.ErrUnsupported }

// closedShort is not known on Windows: the Server reads no descriptor
// there.
func closedShort(fd, missing int) bool { return false }

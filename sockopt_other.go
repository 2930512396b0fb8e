//go:build unix && !linux

package logsock

import "time"

// setUserTimeout does nothing where TCP_USER_TIMEOUT does not exist;
// keepalive and the write deadline still detect a dead collector.
func setUserTimeout(int, time.Duration) error { return nil }

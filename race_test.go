//go:build race

package logsock_test

const raceEnabled = true

//go:build !race

package logsocktest

const raceEnabled = false

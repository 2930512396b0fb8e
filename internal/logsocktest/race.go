//go:build race

package logsocktest

// raceEnabled: the race detector makes the tests several times slower,
// and each of them a heavier load for the others.
const raceEnabled = true

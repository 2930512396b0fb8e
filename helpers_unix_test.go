//go:build unix

package logsock_test

// localNetwork is the network of the tests that need a collector, but
// test nothing of its network.
const localNetwork = "unix"

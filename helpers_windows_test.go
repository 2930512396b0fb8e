package logsock_test

// localNetwork is the network of the tests that need a collector, but
// test nothing of its network: TCP, as logsock does not promise Unix
// sockets on Windows.
const localNetwork = "tcp"

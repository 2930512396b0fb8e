//go:build unix

// Package faultlab is logsock's fault harness: it runs the example
// collector as a child process on a fixed address (TCP on 127.0.0.1, or a
// Unix socket in a short temporary directory) and stops it gracefully,
// kills it, pauses and resumes it, and restarts it, while a client sends
// sequence-numbered messages; then it counts what arrived, in the manner
// of rsyslog's chkseq: missing, duplicated, out of order, corrupt.
//
// Run runs one scenario (Scenarios) with the library's client, RunPeer
// the graceful-idle scenario with the article's reconnecting Python client
// or Go's log/syslog, RunMemory an outage with a bounded buffer. The fault
// tests (its fault_test.go) and the report (examples/reliability) use them.
//
// What a Result counts as lost is split by what the client's Log call did
// with the frame: refused (an error), held (Stats.Held > 0 after the
// call: written later, on a later connection), or written to a connection
// at once. Frames of the last kind can be lost with that connection when
// the collector dies (no acknowledgements); KernelBound says how many its
// kernel buffers can hold.
//
// Every child process is killed and waited for before the function that
// started it returns; on Linux, the parent-death signal also kills it if
// the harness dies first.
package faultlab

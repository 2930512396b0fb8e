// Package logsock ships log messages from many processes to a collector
// over TCP or Unix stream sockets: each connection opens with the pid of the
// process that made it, then carries frames, a 32-bit length and the
// message's bytes. It has the client ([LogSocket]), the collector
// ([Server]), a [Decoder], and the contract by which a child process logs on
// its parent's connection. PROTOCOL.md, in the module's root, describes the
// wire and the contract for authors in other languages.
//
// # Logging
//
//	ls, err := logsock.New("unix", "/run/logsock.sock", nil) // connects when needed
//	if err != nil {
//		return err // a bad address or Config: nothing is dialed yet
//	}
//	defer ls.Close() // delivers what is held, for up to Config.CloseTimeout
//	ls.Log("started")
//	slog.SetDefault(slog.New(slog.NewJSONHandler(ls, nil))) // a record a frame
//
// A LogSocket is an io.Writer whose every Write is one frame, so log.Logger
// and slog's handlers send a record a frame; with [LogSocket.Sync] it is a
// zapcore.WriteSyncer; a [LineWriter] sends a frame a line of a command's
// output. log and slog drop Write's error: a record over [Config].MaxFrame
// is then lost, counted only in [Stats].Errors. [Config].Batching queues
// the frames for a goroutine that writes those of all callers in batches.
// [NewSyslog] sends RFC 5424 messages to a syslog server instead, and
// [Config].TLS goes over TLS.
//
// # Child processes
//
// [LogSocket.Start] starts an exec.Cmd that inherits the connection; the
// child adopts it with [FromEnv] and logs on it without a handshake, under a
// lock shared with the parent, so that the collector sees the child's frames
// under the parent's pid, as after a fork, and no frame tears another. A
// running process receives it with [ReceiveConn] from [LogSocket.SendConn].
// After a reconnect, each process has a connection of its own, opened with
// its own pid.
//
// # Collecting
//
// A [Server] reads each connection in a goroutine of its own and hands every
// message to its Handler, with the pid of the handshake and, on Unix sockets
// on Linux, the pids of the process that connected and of the one that
// wrote the frame. A connection that breaks the format, stalls or fails is
// closed, with a [Reason], and no other; limits bound its memory. cmd/logsockd
// is the collector program: it writes the records to a file and forwards
// them to syslog.
//
// # Guarantees
//
// There are no acknowledgements: a frame that the kernel accepted is lost if
// the collector dies before reading it. Within that limit:
//
//   - A nil error from Log means the frame was written whole to the
//     connection, or is held (in batching mode: queued) in a buffer bounded
//     by [Config].BufferBytes; when it is full, [Config].Overflow waits or
//     drops, and every drop is counted in [Stats].
//   - A frame whose write fails, even half-written, is sent again whole, first,
//     on the next connection, after a fresh handshake. Frames never
//     interleave; each goroutine's arrive in order.
//   - A graceful restart of a Server, or of logsockd, loses nothing, idle or
//     under load: the Server half-closes each connection, and the client's
//     peek before its next write sees it, stops writing there and closes,
//     while the Server reads on to that end (measured: 20 restarts while 4
//     goroutines log as fast as they can, each mode, TCP and Unix).
//   - Reconnects back off, with jitter, up to [Config].MaxBackoff, so that a
//     collector that accepts and closes at once costs a connection every few
//     seconds. A frame that the collector refuses, ending the connection
//     while it is written, three times in a row, is dropped and reported.
//   - No call waits longer than WriteTimeout for the collector, and nobody
//     waits holding the lock that other callers need, but for a write in
//     progress in direct mode. Close delivers what is held for up to
//     CloseTimeout, then reports ([ErrUndelivered]) and counts what it could
//     not.
//
// In direct mode (the default) the LogSocket starts no goroutine but a dial
// that would keep a call waiting: held frames go out during later calls.
// Every goroutine it starts ends before Close returns.
//
// On Windows, the client, the Decoder and the Server work over TCP, with no
// peek ([Config].PeekInterval) and no sharing: Start, SendConn and
// ReceiveConn return an error wrapping [errors.ErrUnsupported].
package logsock

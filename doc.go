// Package logsock ships log messages from many processes to a collector
// over TCP or Unix stream sockets: each connection opens with the pid of the
// process that made it, then carries frames, a 32-bit length and the
// message's bytes. PROTOCOL.md, in the module's root, describes the wire and
// the inheritance contract for authors in other languages.
//
//	ls, err := logsock.New("unix", "/run/logsock.sock", nil) // connects when needed
//	if err != nil {
//		return err // a bad address or Config
//	}
//	defer ls.Close() // delivers what is held, for up to Config.CloseTimeout
//	ls.Log("started")
//	slog.SetDefault(slog.New(slog.NewJSONHandler(ls, nil))) // a record a frame
//
// A [LogSocket] is an io.Writer whose every Write is one frame, for log and
// slog; Sync makes it a zapcore.WriteSyncer; a [LineWriter] sends a
// command's output a line a frame. [Config].Batching writes in batches.
// [LogSocket.Start] starts a child that adopts the connection with [FromEnv]
// and writes on it under a lock shared with the parent, so that the
// collector sees its frames under the parent's pid, as after a fork. A
// [Server] is the collector; cmd/logsockd is the collector program.
//
// [Config].Acks turns on protocol v2: the collector acknowledges each frame,
// and the client holds it until then, resending after a reconnect; frames
// carry their time, a [Level] ([LogSocket.LogLevel], [NewSlogHandler]) and
// the client's tag. A Server speaks v1 and v2 on one listener.
//
// # Guarantees
//
// Without acknowledgements (v1, the default), a frame that the kernel
// accepted is lost if the collector dies before reading it. Within that
// limit:
//
//   - A nil error from Log means the frame was written whole to the
//     connection, or is held (in batching mode, queued) within
//     [Config].BufferBytes; when that is full, [Config].Overflow waits or
//     drops, and every drop is counted.
//   - A frame whose write fails, even in part, is sent again whole, first, on
//     the next connection, after a new handshake. Frames never interleave;
//     each goroutine's arrive in order.
//   - A graceful restart of a Server (or logsockd) loses nothing, idle or
//     under load: it half-closes each connection, the client's peek before
//     its next write sees that and closes, and the Server reads on to that
//     end (measured: 20 restarts while 4 goroutines log as fast as they can,
//     each mode, TCP and Unix).
//   - Reconnects back off, with jitter. A frame that the collector refuses,
//     ending the connection while it is written, three times in a row, is
//     dropped and reported.
//   - No call waits longer than WriteTimeout for the collector, and none
//     holds a lock that others need while it waits, but for a write in
//     direct mode. Close delivers what is held for up to CloseTimeout, then
//     reports ([ErrUndelivered]) and counts what it could not.
//   - With acknowledgements, a frame counts as delivered once acknowledged;
//     the frames not acknowledged are sent again, with their numbers, after
//     a reconnect, and the collector drops those it already had (measured:
//     6 collector crashes under load, 0 frames lost). Flush, Sync and Close
//     wait for the acknowledgements.
//
// In direct mode (the default) the LogSocket starts no goroutine but a dial
// that would keep a call waiting; every goroutine it starts ends before
// Close returns. On Windows there is no peek and no sharing (Start returns
// an error wrapping [errors.ErrUnsupported]).
package logsock

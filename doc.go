// Package logsock ships log messages from many processes to a collector over
// TCP or Unix stream sockets, as frames (a 32-bit length, the message) after
// the pid of the process that connected. PROTOCOL.md describes the wire for
// authors in other languages.
//
//	ls, err := logsock.New("unix", "/run/logsock.sock", nil) // connects when needed
//	if err != nil {
//		return err // a bad address or Config
//	}
//	defer ls.Close() // delivers what is held, for up to Config.CloseTimeout
//	ls.Log("started")
//	slog.SetDefault(slog.New(slog.NewJSONHandler(ls, nil))) // a record a frame
//
// A [LogSocket] is an io.Writer whose every Write is a frame, for log and
// slog, and with Sync a zapcore.WriteSyncer. [LogSocket.Start] starts a
// child that writes on the connection under a lock shared with the parent,
// as after a fork. [Config].Acks turns on protocol v2: the collector
// acknowledges each frame, which carries its time, [Level] and tag. A
// [Server] is a collector; cmd/logsockd is the collector program.
//
// # Guarantees
//
// Without Acks (v1, the default), a frame that the kernel accepted is lost
// if the collector dies before reading it. Within that limit:
//
//   - A nil error from Log means the frame was written whole, or is held
//     within [Config].BufferBytes; when that is full, [Config].Overflow
//     waits or drops, and counts each drop.
//   - A frame whose write fails, even in part, is sent again whole, first,
//     on the next connection. Frames never interleave; each goroutine's
//     arrive in order.
//   - A graceful restart of a Server or logsockd loses nothing: it
//     half-closes each connection, which the client sees before its next
//     write (measured: 20 restarts under load, each mode, TCP and Unix).
//   - A frame that the collector refuses three times in a row is dropped and
//     reported.
//   - No call waits longer than WriteTimeout for the collector, nor holds a
//     lock that others need while it waits, but a write in direct mode.
//     Close delivers for up to CloseTimeout, then counts what it could not
//     ([ErrUndelivered]).
//   - With Acks, a frame is delivered once acknowledged; the others are sent
//     again after a reconnect, and the collector drops those it already had
//     (measured: 6 collector crashes under load, 0 lost). Flush, Sync and
//     Close wait for the acknowledgements.
package logsock

// Package logsock ships log messages from many processes to a collector
// over TCP or Unix stream sockets, in length-prefixed frames behind a pid
// handshake, and reads such streams back.
//
// # Wire format
//
// A connection opens with a handshake: the pid of the process that opened
// it, as a signed 32-bit integer. Then come frames: a signed 32-bit length
// L, then L bytes of message (UTF-8 text expected; any bytes are kept).
// Integers are little-endian unless both sides choose BigEndian. A valid
// length is 0 <= L <= the reader's limit (DefaultMaxFrame, 1 MiB, unless
// set); any other length is a protocol error that ends that connection.
// Nothing flows from the collector to the client. This is the format of
// the Python client in the article the project comes from, except that its
// length counts code points: [DecoderConfig].CodePoints reads that variant.
//
// A [LogSocket] made by [NewSyslog] frames its messages as syslog over TCP
// does (RFC 6587): no handshake, and each message behind its length in
// decimal and a space. It forwards RFC 5424 messages to a syslog server,
// such as rsyslog, with the delivery guarantees below.
//
// With [Config].TLS, every connection is a TLS client connection, the
// handshake part of the dial: to a collector on another host (logsockd
// -listen tls://), or to a syslog server (RFC 5425). The frames are the
// same inside it. A Server reads TLS from a listener made by
// tls.NewListener.
//
// # Delivery
//
// There are no acknowledgements: a frame the kernel accepted can still be
// lost if the collector dies before reading it. Within that limit, a
// LogSocket loses nothing it still holds:
//
//   - In direct mode, a nil error from Log or Write means that the whole
//     frame was written to the connection, or that it is held in a buffer
//     bounded by [Config].BufferBytes, because the collector is unreachable
//     now.
//   - A frame whose write fails, even half-written, is held whole and sent
//     again from its start on the next connection, never continued.
//   - Before writing on a connection not checked for [Config].PeekInterval,
//     a non-blocking peek finds a collector that has closed it, or half-closed
//     it to drain it, as [Server.Shutdown] does: the client then writes
//     nothing more there and closes it, and the Server reads on to that end.
//     So a graceful restart of a Server, or of logsockd, loses nothing, idle
//     or under load (measured: 20 restarts while 4 goroutines log as fast
//     as they can, each mode, TCP and Unix: 0 frames lost). A collector that
//     closes without a drain can lose, under load on TCP, the frame written
//     between the close and the next check, unless PeekInterval is tiny:
//     see Config.
//   - Each new connection starts with a fresh handshake that carries the
//     pid of the process writing. A connection lost after it stayed up for
//     a second is replaced at once; otherwise attempts back off
//     exponentially, with jitter, up to [Config].MaxBackoff: a collector that
//     refuses, or accepts and closes at once, costs a connection every
//     few seconds (about 16 a minute with the defaults), not one a call.
//   - When the buffer is full, [Config].Overflow decides: wait up to
//     WriteTimeout ([Block]), drop the new frame ([DropNewest]) or the oldest
//     ([DropOldest]), the same in both modes; none of them keeps the
//     LogSocket from reconnecting. Every frame dropped is counted in
//     [LogSocket.Stats].
//   - Nobody dials, waits out a backoff or waits for room in the buffer
//     while holding the lock that other callers need. A write does hold it
//     in direct mode, since frames go out one at a time: its waits for room
//     in the socket's send buffer and, on a connection shared with other
//     processes, for the frame lock, hold up the calls behind it, each for
//     up to WriteTimeout.
//   - No call blocks forever: its own wait for the collector is bounded by
//     WriteTimeout (a dial that takes longer goes on without it), though
//     calls queue behind a write in progress. Close tries to deliver what is held for up to
//     CloseTimeout, cancelling a dial and cutting a write in progress at
//     the end, then reports ([ErrUndelivered]) and counts what it could not.
//
// In direct mode (the default) the LogSocket has no goroutine of its own:
// each call writes its frame, and held frames go out during later calls of
// Log, Write, [LogSocket.Flush] and Close. In batching mode ([Config].Batching), a nil
// error means only that the frame is queued: a goroutine that the
// LogSocket owns, and Close joins, writes the frames of all callers in
// batches, and reconnects by itself. TCP keepalive and, on Linux,
// TCP_USER_TIMEOUT detect a collector that vanished without closing.
//
// A message longer than [Config].MaxFrame is refused with [ErrFrameTooLarge],
// never truncated. A frame that the collector refuses, by ending the
// connection while it is being written, three times in a row, is dropped
// and reported (see [LogSocket.Log]), so that it never holds up the frames
// behind it.
//
// # Logging APIs
//
// A LogSocket is an io.Writer whose every Write is one frame, so that
// log.Logger and the handlers of log/slog, which write each record in one
// call, send each record as one frame (with the newline they end it
// with). With [LogSocket.Sync] it is a zapcore.WriteSyncer: Sync waits,
// for up to WriteTimeout, until what was logged has been written to the
// connection. A writer that writes bytes as they come (an exec.Cmd's
// Stdout, a pipe) goes through a [LineWriter], which sends a frame a line.
//
// log.Logger and log/slog drop the error that Write returns: a record
// longer than MaxFrame, refused with ErrFrameTooLarge, is then lost
// without a word. It is counted in [Stats].Errors; raise MaxFrame (and the
// collector's limit) where records can be long, or write through a
// LineWriter, which splits a long line into frames of MaxFrame bytes.
//
// # Sharing the connection with child processes
//
// Go cannot fork without exec, so a parent hands its connection to a child
// it starts: [LogSocket.Start] starts an exec.Cmd with the socket among its
// ExtraFiles, and the child adopts it with [FromEnv]. A running process can
// receive it over a Unix socket instead ([LogSocket.SendConn], [ReceiveConn]). The
// child writes on the inherited connection without a handshake, so the
// collector attributes its frames to the parent's pid, as after a fork;
// after any reconnect, each process has a connection of its own that opens
// with its own pid.
//
// One write is not atomic across processes (the kernel releases the
// socket lock while it waits for room), so every holder of a shared
// connection writes each frame under a lock. The contract, for a child in
// any language:
//
//   - LOGSOCK_NETWORK and LOGSOCK_ADDRESS name the collector ("tcp",
//     "tcp4", "tcp6" or "unix", and a non-empty address: host:port, or a
//     path), for the child's own reconnects, and LOGSOCK_ORDER the byte
//     order ("little" or "big"; required).
//   - LOGSOCK_FD is the inherited socket's descriptor, and LOGSOCK_SOCKET
//     its identity, "dev:ino" as fstat reports them: check that the
//     descriptor is a stream socket of the network with that identity
//     before using it, since descriptor numbers go stale. LOGSOCK_FD,
//     LOGSOCK_SOCKET and LOGSOCK_LOCK_FD are set together or not at all
//     (the parent had no connection to pass). Check every variable before
//     you touch a descriptor, and never close one that fails its check:
//     it is another file of the child's. Make the two close-on-exec, and
//     unset the variables, so that neither leaks to the child's own
//     children.
//   - LOGSOCK_LOCK_FD is the lock file, 16 bytes. Byte 0 is "frame in
//     progress", byte 1 "torn". To write a frame: take a POSIX record write
//     lock on byte 0, length 1 (fcntl F_SETLKW; Python's
//     fcntl.lockf(fd, LOCK_EX, 1, 0)). If byte 0 is 1, a holder died inside
//     a frame: set byte 1 to 1 and byte 0 to 0. If byte 1 is 1, the stream
//     is torn: unlock, and stop using the connection (reconnect on your
//     own, with your own handshake). Otherwise set byte 0 to 1, write the
//     whole frame, set byte 0 to 0, and unlock; leave byte 0 at 1 if you
//     stop with a frame half-written. A holder may keep the lock between
//     its frames, with byte 0 at 0, for up to 200 µs after it took it.
//     While you wait for the lock, poll at least every 200 µs and set byte
//     4 ("wanted") to 1; set it to 0 once you have the lock. A holder that
//     finds byte 4 set leaves the lock to the waiter: it does not take it
//     again until byte 4 is 0, or for 1 ms. You may do the same. A holder
//     stopped (SIGSTOP) while it has the lock, parked or inside a frame,
//     holds up the others: a LogSocket waits for the lock no longer than
//     Config.WriteTimeout, then goes on on a connection of its own.
//   - POSIX locks exclude processes, not threads: serialise the threads of
//     one process too. A process loses its POSIX locks when it closes any
//     descriptor of the file, so keep exactly one. The kernel releases the
//     lock of a process that dies.
//   - Never shut down a shared socket (shutdown ends the stream for every
//     holder); just close your descriptor.
//
// examples/pychild/child.py is a Python child that follows the contract.
//
// # Concurrency
//
// A LogSocket is safe for any number of goroutines. In direct mode each
// frame goes out in one write (header and message together) under a
// mutex; in batching mode each frame is copied whole into a chunk at a
// place reserved with an atomic compare-and-swap, and chunks are written
// in order. Frames never interleave; each goroutine's frames arrive in the
// order it sent them. The hot path of direct mode makes one syscall and no
// allocation a frame (and, at most once every PeekInterval, the peek);
// that of batching mode no syscall, no lock and no allocation. A Server
// runs one goroutine a connection and joins them in Shutdown and Close;
// its Handler runs on those goroutines.
//
// # Collector
//
// A Server closes a connection that breaks the format, stalls or fails,
// and no other, and reports why (a Reason); it never writes to a client.
// MaxConns, MaxConnsPerPeer and MaxMemory bound what clients can take: at
// a limit it stops accepting, or stops reading the connections that need
// more memory, rather than close them with what they sent; an idle
// connection holds no read buffer, and HandshakeTimeout (and IdleTimeout,
// if set) drop clients that send nothing. On Unix sockets on Linux each Record names the process that
// connected (SO_PEERCRED) and the one that wrote the frame (SO_PASSCRED):
// the frames of a child on its parent's connection are told apart, and
// frames torn by writers without the lock are flagged. Over TCP each
// Record names the client's address. cmd/logsockd is the collector
// program built on it, which writes the records to a file and forwards
// them to a syslog server.
//
// # Windows
//
// The client, the Decoder and the Server work on Windows over TCP, with no
// peek (see [Config].PeekInterval), no credentials, and no sharing of a
// connection between processes: [LogSocket.Start], [LogSocket.SendConn] and
// [ReceiveConn] return an error wrapping [errors.ErrUnsupported].
package logsock

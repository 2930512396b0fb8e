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
// length counts code points: DecoderConfig.CodePoints reads that variant.
//
// # Delivery
//
// A nil error from Log or Write means that the whole frame was written to
// the connection: the kernel accepted it. There are no acknowledgements,
// so a frame accepted can still be lost if the collector dies before it
// reads it. A frame is never sent in part on purpose: if a write fails or
// times out midway, that connection is dropped (its stream may be torn)
// and the call returns the error; the next call dials again and sends a
// fresh handshake. A message longer than Config.MaxFrame is refused with
// ErrFrameTooLarge, never truncated. No call blocks longer than
// Config.WriteTimeout waiting for the collector (or Config.DialTimeout to
// connect), and Close unblocks every call at once.
//
// # Concurrency
//
// A LogSocket is safe for any number of goroutines. Each frame goes out in
// one write (a sendmsg of header and message together), under a mutex, so
// frames never interleave; each goroutine's frames arrive in the order it
// sent them. The hot path makes one syscall and no allocation a frame.
// The library starts no goroutine on the client side. A Server runs one
// goroutine a connection and joins them in Shutdown and Close; its Handler
// runs on those goroutines.
package logsock

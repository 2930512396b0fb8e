package logsock

// useRaw leaves c to be read through net.Conn's Read (readConn), as a
// connection that is not a socket is: Go opens sockets in blocking mode on
// Windows, for overlapped I/O, so there is no read that does not wait. An
// idle connection so keeps its read buffer, and Shutdown's drain waits up
// to 20 ms a read for bytes in flight rather than reading what has
// arrived.
func (c *serverConn) useRaw() {}

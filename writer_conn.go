package logsock

// The frameWriter's way through net.Conn's Write, under the write
// deadline: for every connection on Windows (writer_windows.go), and for
// TLS connections everywhere, whose records a raw send cannot make.

import "time"

// sendConn writes what prepare set up through c.stream() until deadline
// (a zero deadline: WriteTimeout from now, counted from the start of the
// write rather than, as on a raw Unix socket, from when it has to wait
// for room). A large unit goes out through net.Buffers, which Go sends
// with one writev or WSASend where the connection is a socket. w.written
// tells how much went out, also on failure.
func (w *frameWriter) sendConn(c *conn, deadline time.Time) error {
	err := w.armDeadline(c, deadline)
	if err == nil {
		err = disarmDeadline(c, w.writeConn(c))
	}
	w.finish()
	return err
}

func (w *frameWriter) writeConn(c *conn) error {
	nc := c.stream()
	if w.parts == nil {
		n, err := nc.Write(w.one)
		w.written = n
		return err
	}
	w.bufs = w.parts[w.next:]
	var err error
	for len(w.bufs) > 0 && err == nil { // WriteTo consumes what it sends
		var n int64
		n, err = w.bufs.WriteTo(nc)
		w.written += int(n)
		if n == 0 && err == nil && len(w.bufs) > 0 {
			err = errNoProgress
		}
	}
	w.bufs = nil
	return err
}

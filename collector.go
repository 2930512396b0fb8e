package logsock

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultHandshakeTimeout is the default time a Server waits for a new
// connection's handshake.
const DefaultHandshakeTimeout = 10 * time.Second

var (
	// ErrServerClosed is returned by Serve after Shutdown or Close, and
	// given to ConnClosed for a connection that shutdown ended at a frame
	// boundary.
	ErrServerClosed = errors.New("logsock: Server closed")
	// ErrHandshakeTimeout is given to ConnClosed for a connection that did
	// not send its handshake within the timeout.
	ErrHandshakeTimeout = errors.New("logsock: handshake timeout")
)

// Record is one message as the collector received it.
type Record struct {
	Conn uint64    // connection id: unique within the Server, counted from 1
	Pid  int32     // the pid that the connection's handshake named
	Msg  []byte    // the message; valid only until the handler returns
	Time time.Time // when the read that completed the frame returned
}

// ConnInfo describes a connection that has ended.
type ConnInfo struct {
	ID     uint64   // the Record.Conn of its records
	Pid    int32    // the handshake pid, or 0 if no handshake arrived
	Remote net.Addr // the client's address
	Frames uint64   // frames handed to the Handler
}

// Server is a collector: it reads a handshake and then frames from each
// connection it accepts, and hands every message to Handler. Each
// connection is read by a goroutine of its own, and a connection that
// breaks the format or fails is closed without touching the others. The
// collector never writes to a client and never half-closes a connection.
//
// Set the fields before the first call of Serve and do not change them
// after. The zero value, with a Handler, is a working Server.
type Server struct {
	// Handler is called with each record, from the connection's goroutine:
	// calls for different connections run concurrently, calls for one
	// connection in order. It must not keep rec or rec.Msg after it returns.
	// A nil Handler discards the records.
	Handler func(rec *Record)
	// ConnClosed, if set, is called once when a connection ends, with why:
	// nil when the client closed it at a frame boundary, ErrServerClosed
	// when Shutdown or Close ended it at a boundary, ErrHandshakeTimeout,
	// a *ProtocolError for a bad length or a stream cut inside a frame (its
	// partial frame is never handed to Handler), or the read error.
	ConnClosed func(info ConnInfo, err error)

	// Order is the byte order of handshakes and frame headers.
	Order ByteOrder
	// MaxFrame limits a message, in bytes: a connection that declares a
	// longer one is closed. Zero means DefaultMaxFrame.
	MaxFrame int
	// CodePoints reads lengths as counts of code points, as the article's
	// client sends them (see DecoderConfig.CodePoints).
	CodePoints bool
	// HandshakeTimeout bounds the wait for a new connection's handshake.
	// Zero means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration

	nextID    atomic.Uint64
	wg        sync.WaitGroup // one per connection goroutine
	accepting sync.WaitGroup // one per Serve loop

	mu        sync.Mutex // guards the fields below
	draining  bool       // Shutdown: accept what is queued, drain every connection
	closing   bool       // no more connections
	listeners map[net.Listener]struct{}
	conns     map[*serverConn]struct{}
}

// Serve accepts connections on l and serves each in its own goroutine. It
// returns ErrServerClosed after Shutdown or Close, or the listener's error.
// Serve closes l when it returns. Serve may be called for several listeners
// at once.
func (s *Server) Serve(l net.Listener) error {
	defer l.Close()
	if !s.track(l, true) {
		return ErrServerClosed
	}
	defer s.accepting.Done()
	defer s.track(l, false)

	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.isDraining() {
				s.acceptQueued(l)
				return ErrServerClosed
			}
			if s.isClosing() {
				return ErrServerClosed
			}
			if !acceptRetryable(err) {
				return err
			}
			// Out of fds or memory: wait a little, as net/http does,
			// rather than spin or give up on the clients still served.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		c := s.newConn(nc)
		if c == nil {
			nc.Close()
			return ErrServerClosed
		}
		go c.serve()
	}
}

func acceptRetryable(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Shutdown stops accepting, then drains every connection: it hands over the
// frames that have already arrived (what the kernel holds included), and
// closes each connection. Connections that clients opened but that were not
// yet accepted are accepted and drained too, where the listener has
// SetDeadline and SyscallConn (as TCP and Unix listeners do). It waits for the connections'
// goroutines, and so for the Handler calls in progress, until ctx is done;
// then it closes what is left and returns ctx.Err().
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	for l := range s.listeners {
		if d, ok := l.(interface{ SetDeadline(time.Time) error }); ok {
			d.SetDeadline(time.Now()) // wake Serve, to accept what is queued
		} else {
			l.Close()
		}
	}
	s.mu.Unlock()
	// Each Serve takes what is queued and closes its listener before any
	// connection is drained: a client whose connection ends then cannot
	// reconnect into a collector that is going away.
	s.accepting.Wait()
	s.mu.Lock()
	s.closing = true
	s.closeListeners()
	for c := range s.conns {
		c.drain()
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.closeConns()
		<-done
		return ctx.Err()
	}
}

// Close stops accepting and closes every connection at once, without
// draining, then waits for the connections' goroutines to end.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closing = true
	s.closeListeners()
	s.mu.Unlock()
	s.closeConns()
	s.wg.Wait()
	return nil
}

// acceptQueued accepts, during Shutdown, the connections that clients have
// opened but Serve had not yet accepted, so that what they sent is drained
// rather than reset. It takes only what is queued now, without waiting: a
// listener left open longer would invite the clients to reconnect into a
// collector that is going away.
func (s *Server) acceptQueued(l net.Listener) {
	sc, ok := l.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	for range 10000 { // a bound, against clients that keep connecting
		var nfd int
		var aerr error
		// A listener's RawConn has Control only; its descriptor is
		// non-blocking, so the accept returns EAGAIN once the queue is empty.
		err := rc.Control(func(fd uintptr) {
			for {
				if nfd, aerr = acceptNow(int(fd)); aerr != unix.EINTR {
					return
				}
			}
		})
		if err != nil || aerr != nil {
			return
		}
		f := os.NewFile(uintptr(nfd), "accepted")
		nc, err := net.FileConn(f)
		f.Close()
		if err != nil {
			continue
		}
		c := s.newConn(nc)
		if c == nil {
			nc.Close()
			return
		}
		go c.serve()
	}
}

func (s *Server) isDraining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining && !s.closing
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// track adds or removes a listener; adding fails once the Server closes.
func (s *Server) track(l net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.listeners, l)
		return true
	}
	if s.closing || s.draining {
		return false
	}
	if s.listeners == nil {
		s.listeners = make(map[net.Listener]struct{})
	}
	s.listeners[l] = struct{}{}
	s.accepting.Add(1)
	return true
}

func (s *Server) closeListeners() {
	for l := range s.listeners {
		l.Close()
	}
}

func (s *Server) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.nc.Close()
	}
}

func (s *Server) newConn(nc net.Conn) *serverConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil
	}
	if s.conns == nil {
		s.conns = make(map[*serverConn]struct{})
	}
	c := &serverConn{s: s, nc: nc}
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			c.rc, c.tryReadFn, c.peekFn = rc, c.tryRead, c.peek
		}
	}
	c.rec.Conn = s.nextID.Add(1)
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	if s.draining {
		c.drain()
	}
	return c
}

// serverConn is one accepted connection.
type serverConn struct {
	s        *Server
	nc       net.Conn
	rec      Record      // reused for every frame: handlers must not keep it
	draining atomic.Bool // Shutdown asked: read what has arrived, then stop
	drained  bool        // a drain read found nothing more: the stream stops here
	frames   uint64

	// The raw connection, and the state of its callbacks, made once so
	// that reading allocates nothing (nil rc: not a socket; no idle mode).
	rc                syscall.RawConn
	rbuf              []byte
	rn                int
	rerr              error
	tryReadFn, peekFn func(fd uintptr) bool
}

func (c *serverConn) serve() {
	s := c.s
	err := c.read()
	c.nc.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	if s.ConnClosed != nil {
		s.ConnClosed(ConnInfo{ID: c.rec.Conn, Pid: c.rec.Pid, Remote: c.nc.RemoteAddr(), Frames: c.frames}, err)
	}
	s.wg.Done()
}

// read runs the connection until it ends and returns why.
func (c *serverConn) read() error {
	s := c.s
	dec := NewDecoder(c, &DecoderConfig{Order: s.Order, MaxFrame: s.MaxFrame, CodePoints: s.CodePoints})

	timeout := s.HandshakeTimeout
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	c.nc.SetReadDeadline(time.Now().Add(timeout))
	pid, err := dec.Handshake()
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return ErrHandshakeTimeout
		}
		return c.reason(err)
	}
	// A drain that began meanwhile is not lost: Read checks the flag
	// before it blocks.
	c.nc.SetReadDeadline(time.Time{})
	c.rec.Pid = pid

	for {
		msg, err := dec.Next()
		if err != nil {
			return c.reason(err)
		}
		c.frames++
		if s.Handler != nil {
			c.rec.Msg = msg
			s.Handler(&c.rec)
			c.rec.Msg = nil // the buffer may go back to the pool while the connection is idle
		}
	}
}

func (c *serverConn) reason(err error) error {
	if err == io.EOF {
		if c.drained {
			return ErrServerClosed
		}
		return nil
	}
	return err
}

// drain makes the reader stop waiting: it returns what has arrived, then
// io.EOF. The flag is set before the deadline, so a Read that has not yet
// blocked sees it.
func (c *serverConn) drain() {
	c.draining.Store(true)
	c.nc.SetReadDeadline(time.Now())
}

// Read is the Decoder's view of the connection: it stamps the time of each
// read, and during a drain reads without waiting.
func (c *serverConn) Read(p []byte) (int, error) {
	if !c.draining.Load() {
		n, err := c.nc.Read(p)
		if n > 0 {
			c.rec.Time = time.Now()
		}
		if err == nil || !c.draining.Load() || !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		if n > 0 {
			return n, nil
		}
	}
	n, err := c.drainRead(p)
	if n > 0 {
		c.rec.Time = time.Now()
	}
	return n, err
}

// readNow reads what has arrived without waiting (idleReader), so that the
// Decoder can give its buffer back when nothing has.
func (c *serverConn) readNow(p []byte) (int, error) {
	if c.rc == nil || c.draining.Load() {
		return c.Read(p)
	}
	c.rbuf = p
	err := c.rc.Read(c.tryReadFn)
	c.rbuf = nil
	if err != nil {
		return 0, err
	}
	if c.rn > 0 {
		c.rec.Time = time.Now()
	}
	return c.rn, c.rerr
}

func (c *serverConn) tryRead(fd uintptr) bool {
	for {
		n, err := unix.Read(int(fd), c.rbuf)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			c.rn, c.rerr = 0, errWouldBlock
		case err != nil:
			c.rn, c.rerr = 0, err
		case n == 0:
			c.rn, c.rerr = 0, io.EOF
		default:
			c.rn, c.rerr = n, nil
		}
		return true
	}
}

// waitReadable waits until data, an end or an error has arrived, holding
// no buffer (idleReader). A drain that begins wakes it.
func (c *serverConn) waitReadable() error {
	if c.rc == nil {
		return nil
	}
	err := c.rc.Read(c.peekFn)
	if err != nil && c.draining.Load() && errors.Is(err, os.ErrDeadlineExceeded) {
		return nil // Read drains what there is
	}
	return err
}

func (c *serverConn) peek(fd uintptr) bool {
	for {
		_, err := peekByte(int(fd))
		if err == unix.EINTR {
			continue
		}
		return err != unix.EAGAIN // wait while nothing is there
	}
}

// drainRead reads what the kernel already holds, without waiting; nothing
// more means the drain is done. A deadline in the past would fail the read
// before looking (Go checks it first), hence the raw read.
func (c *serverConn) drainRead(p []byte) (int, error) {
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		// No descriptor to poll: wait briefly for data in flight instead.
		c.nc.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		n, err := c.nc.Read(p)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.drained = true
			err = io.EOF
		}
		return n, err
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var rerr error
	for {
		c.nc.SetReadDeadline(time.Time{})
		err = rc.Read(func(fd uintptr) bool {
			for {
				n, rerr = unix.Read(int(fd), p)
				if rerr != unix.EINTR {
					return true
				}
			}
		})
		// Shutdown's drain can set a deadline again between the two
		// calls; it only means to wake a blocked read, so look again.
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
	}
	switch {
	case err != nil:
		return 0, err
	case rerr == unix.EAGAIN:
		c.drained = true
		return 0, io.EOF
	case rerr != nil:
		return 0, rerr
	case n == 0:
		return 0, io.EOF // the client closed
	}
	return n, nil
}

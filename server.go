package logsock

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultHandshakeTimeout is the default time a Server waits for a new
// connection's handshake.
const DefaultHandshakeTimeout = 10 * time.Second

// DefaultMaxConns is the default limit on a Server's open connections.
const DefaultMaxConns = 10000

var (
	// ErrServerClosed is returned by Serve after Shutdown or Close, and
	// given to ConnClosed for a connection that shutdown ended at a frame
	// boundary, or that Close (or Shutdown's deadline) cut.
	ErrServerClosed = errors.New("logsock: Server closed")
	// ErrHandshakeTimeout is given to ConnClosed for a connection that did
	// not send its handshake within the timeout.
	ErrHandshakeTimeout = errors.New("logsock: handshake timeout")
	// ErrIdleTimeout is given to ConnClosed for a connection that sent
	// nothing for Server.IdleTimeout.
	ErrIdleTimeout = errors.New("logsock: idle timeout")
	// ErrConnLimit is given to ConnClosed for a connection refused because
	// Server.MaxConns were open.
	ErrConnLimit = errors.New("logsock: connection limit reached")
	// ErrPidMismatch is wrapped by the error given to ConnClosed for a
	// connection whose handshake pid is not its peer's pid, when
	// Server.RejectPidMismatch is set.
	ErrPidMismatch = errors.New("logsock: handshake pid is not the peer's pid")
)

// Record is one message as the collector received it.
type Record struct {
	Conn uint64 // connection id: unique within the Server, counted from 1
	Pid  int32  // the pid that the connection's handshake named

	// PeerPid, PeerUid and PeerGid are the credentials of the process
	// that connected, as the kernel recorded them at connect (SO_PEERCRED),
	// on Unix sockets on Linux. Elsewhere all three are 0: PeerPid 0 means
	// unknown, and then PeerUid and PeerGid mean nothing (0 is not root).
	PeerPid          int32
	PeerUid, PeerGid uint32
	// WriterPid is the process that wrote this frame (SO_PASSCRED), on Unix
	// sockets on Linux; 0 when unknown. A child that inherited the
	// connection writes frames whose WriterPid is its own, while Pid and
	// PeerPid name the parent that connected: that is no mismatch. (A
	// connection opened before Serve began can have frames of writer 0:
	// those sent in the instant between its accept and the Server's
	// setsockopt, since the kernel copies the listener's SO_PASSCRED at
	// connect.)
	WriterPid int32
	Flags     Flags // what is unusual about the record
	// Remote is the address the connection came from: over TCP the
	// client's IP and port, which tell apart the pids of different hosts;
	// over a Unix socket it names no process (see PeerPid).
	Remote net.Addr

	Msg  []byte    // the message, as sent; valid only until the handler returns
	Time time.Time // when the read that completed the frame returned
}

// Flags mark what is unusual about a Record. The zero value marks nothing.
type Flags uint8

const (
	// FlagInvalidUTF8 marks a message that is not valid UTF-8. It is
	// delivered as the bytes that were sent.
	FlagInvalidUTF8 Flags = 1 << iota
	// FlagPidMismatch marks every record of a connection whose handshake
	// pid is not the pid of the process that connected (Record.PeerPid).
	// See Server.RejectPidMismatch.
	FlagPidMismatch
	// FlagMixedWriters marks a frame whose bytes more than one process
	// wrote: processes sharing the connection without the frame lock tore
	// it. Its WriterPid is the writer of its header's first byte.
	FlagMixedWriters
)

var flagNames = []string{"invalid_utf8", "pid_mismatch", "mixed_writers"}

// String returns the names of the flags set, joined by "|", or "none".
func (f Flags) String() string {
	if f == 0 {
		return "none"
	}
	var b []byte
	for i, name := range flagNames {
		if f&(1<<i) != 0 {
			if len(b) > 0 {
				b = append(b, '|')
			}
			b = append(b, name...)
		}
	}
	if rest := f &^ (1<<len(flagNames) - 1); rest != 0 {
		if len(b) > 0 {
			b = append(b, '|')
		}
		b = fmt.Appendf(b, "%#x", uint8(rest))
	}
	return string(b)
}

// Reason is why a connection ended: ConnInfo.Reason, and the key of
// ServerStats.Ends. Each comes with one error given to ConnClosed.
type Reason uint8

const (
	// ReasonEOF: the client closed the connection at a frame boundary
	// (error nil).
	ReasonEOF Reason = iota
	// ReasonShutdown: Shutdown drained it, or Close or Shutdown's deadline
	// cut it (ErrServerClosed).
	ReasonShutdown
	// ReasonTruncated: the stream ended inside the handshake or a frame
	// (a *ProtocolError wrapping io.ErrUnexpectedEOF), or Shutdown's drain
	// found it there. The partial frame is not delivered. On a Unix socket
	// a client's reset ends so too: only TCP has resets.
	ReasonTruncated
	// ReasonBadLength: a negative length, or bytes that are not UTF-8 in
	// CodePoints mode (a *ProtocolError wrapping ErrNegativeLength or
	// ErrInvalidCodePoint, quoting the bytes).
	ReasonBadLength
	// ReasonFrameTooLarge: a length above MaxFrame (a *ProtocolError
	// wrapping ErrFrameTooLarge).
	ReasonFrameTooLarge
	// ReasonHandshakeTimeout: no handshake within HandshakeTimeout
	// (ErrHandshakeTimeout).
	ReasonHandshakeTimeout
	// ReasonIdleTimeout: nothing arrived for IdleTimeout (ErrIdleTimeout).
	ReasonIdleTimeout
	// ReasonConnLimit: refused at accept, MaxConns being open
	// (ErrConnLimit).
	ReasonConnLimit
	// ReasonPidMismatch: closed after the handshake, its pid not being the
	// peer's, under RejectPidMismatch (an error wrapping ErrPidMismatch).
	ReasonPidMismatch
	// ReasonIOError: the read failed (the error, wrapping its errno, such
	// as ECONNRESET when a TCP client resets the connection).
	ReasonIOError

	numReasons
)

var reasonNames = [numReasons]string{"eof", "shutdown", "truncated", "bad_length", "frame_too_large",
	"handshake_timeout", "idle_timeout", "conn_limit", "pid_mismatch", "io_error"}

// String returns the reason's name in snake case, fit for a metric label:
// "eof", "shutdown", "truncated", "bad_length", and so on.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

// reasonOf classifies the error that ended a connection.
func reasonOf(err error) Reason {
	switch {
	case err == nil:
		return ReasonEOF
	case errors.Is(err, ErrServerClosed):
		return ReasonShutdown
	case errors.Is(err, ErrHandshakeTimeout):
		return ReasonHandshakeTimeout
	case errors.Is(err, ErrIdleTimeout):
		return ReasonIdleTimeout
	case errors.Is(err, ErrConnLimit):
		return ReasonConnLimit
	case errors.Is(err, ErrPidMismatch):
		return ReasonPidMismatch
	case errors.Is(err, ErrFrameTooLarge):
		return ReasonFrameTooLarge
	case errors.Is(err, ErrNegativeLength), errors.Is(err, ErrInvalidCodePoint):
		return ReasonBadLength
	case errors.Is(err, io.ErrUnexpectedEOF):
		return ReasonTruncated
	}
	return ReasonIOError
}

// ConnInfo describes a connection that has ended.
type ConnInfo struct {
	ID               uint64   // the Record.Conn of its records
	Pid              int32    // the handshake pid, or 0 if no handshake arrived
	PeerPid          int32    // as Record.PeerPid
	PeerUid, PeerGid uint32   // as Record.PeerUid and PeerGid
	Remote           net.Addr // the client's address
	Frames           uint64   // frames handed to the Handler
	Reason           Reason   // why it ended
}

// ServerStats are a Server's counters since it started.
type ServerStats struct {
	Accepted     uint64 // connections accepted, those refused included
	Active       uint64 // connections open now
	Frames       uint64 // frames delivered (to the Handler, if any)
	Bytes        uint64 // message bytes of those frames
	InvalidUTF8  uint64 // frames flagged FlagInvalidUTF8
	PidMismatch  uint64 // connections whose records are flagged FlagPidMismatch
	MixedWriters uint64 // frames flagged FlagMixedWriters
	// Cut counts the frames lost because the Server ended a connection
	// while one was arriving: Close, or Shutdown's deadline (a client
	// that ends its stream inside a frame is counted in Ends only, as
	// ReasonTruncated). Each such connection counts one frame; bytes that
	// reach a connection after the Server closed it are not seen.
	Cut  uint64
	Ends map[Reason]uint64 // connections ended, by reason; reasons not seen are absent
}

// serverCounters are the atomics behind ServerStats. Frames and Bytes take
// a connection's delivered frames in one add when it next reads or ends,
// so that ingest does not contend on them frame by frame.
type serverCounters struct {
	accepted, frames, bytes                atomic.Uint64
	invalidUTF8, pidMismatch, mixedWriters atomic.Uint64
	cut                                    atomic.Uint64
	active                                 atomic.Int64
	ends                                   [numReasons]atomic.Uint64
}

// Server is a collector: it reads a handshake and then frames from each
// connection it accepts, and hands every message to Handler. One bad or
// hostile connection never harms another: each connection is read by a
// goroutine of its own; a connection that breaks the format, stalls or
// fails is closed, with a Reason; memory is bounded by the limits below
// (at most MaxConns x (MaxFrame + a few KiB), since the read buffer grows
// only with bytes that have arrived, and an idle connection holds none;
// on Windows, where Go's sockets have no read that does not wait, it keeps
// its own). The collector never writes to a client; it half-closes a
// connection only to drain it at Shutdown.
//
// On Unix sockets on Linux, each record also says who connected
// (SO_PEERCRED) and which process wrote the frame (SO_PASSCRED); see
// Record.
//
// Set the fields before the first call of Serve and do not change them
// after. The zero value, with a Handler, is a working Server.
type Server struct {
	// Handler is called with each record, from the connection's goroutine:
	// calls for different connections run concurrently, calls for one
	// connection in order. It must not keep rec or rec.Msg after it returns.
	// A nil Handler discards the records.
	Handler func(rec *Record)
	// ConnClosed, if set, is called once when a connection ends, after its
	// last Handler call, with why: info.Reason, and the error that the
	// Reason's documentation names (nil for ReasonEOF). It is called for a
	// connection refused under MaxConns too, from Serve's goroutine.
	ConnClosed func(info ConnInfo, err error)

	// Order is the byte order of handshakes and frame headers.
	Order ByteOrder
	// MaxFrame limits a message, in bytes: a connection that declares a
	// longer one is closed, before anything is allocated for it. Zero
	// means DefaultMaxFrame.
	MaxFrame int
	// CodePoints reads lengths as counts of code points, as the article's
	// client sends them (see DecoderConfig.CodePoints).
	CodePoints bool
	// HandshakeTimeout bounds the wait for a new connection's handshake,
	// against clients that connect and send nothing. Zero means
	// DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// IdleTimeout, if positive, closes a connection that sends nothing for
	// that long, even inside a frame. Zero means no limit: a log stream
	// can be quiet for hours, and TCP keepalive (on by default for
	// accepted connections) finds peers that vanished.
	IdleTimeout time.Duration
	// MaxConns limits the connections open at once: when it is reached, a
	// new connection is accepted and closed at once, without reading from
	// it, and reported to ConnClosed (ReasonConnLimit); the open ones are
	// not affected. Zero means DefaultMaxConns; a negative value, no limit.
	MaxConns int
	// RejectPidMismatch closes, right after its handshake, a connection
	// whose handshake pid is not the pid of the process that connected
	// (ReasonPidMismatch). By default such a connection is served and its
	// records are flagged FlagPidMismatch: across pid namespaces
	// (containers), the two pids legitimately differ. Only Unix sockets on
	// Linux tell the peer's pid.
	RejectPidMismatch bool

	nextID    atomic.Uint64
	stats     serverCounters
	wg        sync.WaitGroup // one per connection goroutine
	accepting sync.WaitGroup // one per Serve loop

	mu        sync.Mutex // guards the fields below
	draining  bool       // Shutdown: accept what is queued, drain every connection
	closing   bool       // no more connections
	listeners map[net.Listener]struct{}
	conns     map[*serverConn]struct{}
}

// Stats returns the Server's counters. A connection's frames are counted
// when it next reads from its socket or ends, so Frames and Bytes can lag
// the Handler by one read's worth.
func (s *Server) Stats() ServerStats {
	st := ServerStats{
		Accepted:     s.stats.accepted.Load(),
		Active:       uint64(max(s.stats.active.Load(), 0)),
		Frames:       s.stats.frames.Load(),
		Bytes:        s.stats.bytes.Load(),
		InvalidUTF8:  s.stats.invalidUTF8.Load(),
		PidMismatch:  s.stats.pidMismatch.Load(),
		MixedWriters: s.stats.mixedWriters.Load(),
		Cut:          s.stats.cut.Load(),
		Ends:         make(map[Reason]uint64),
	}
	for r := range s.stats.ends {
		if n := s.stats.ends[r].Load(); n > 0 {
			st.Ends[Reason(r)] = n
		}
	}
	return st
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
	passCredListener(l)

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
		if !s.start(nc) {
			return ErrServerClosed
		}
	}
}

// passCredListener sets SO_PASSCRED on a Unix listener, so that the
// sockets it accepts carry the writer's pid with every byte from the first
// (see passCred).
func passCredListener(l net.Listener) {
	if !credsSupported || l.Addr().Network() != "unix" {
		return
	}
	if sc, ok := l.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			rc.Control(func(fd uintptr) { passCred(int(fd)) })
		}
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

// start serves an accepted connection in a goroutine of its own, or closes
// it at once if MaxConns are open. It returns false, having closed nc, if
// the Server is closing.
func (s *Server) start(nc net.Conn) bool {
	c, id, err := s.newConn(nc)
	switch {
	case err == ErrServerClosed:
		nc.Close()
		return false
	case err != nil:
		s.refuse(nc, id, err)
	default:
		c.peerCreds() // before the goroutine starts: see peerCreds
		go c.serve()
	}
	return true
}

// refuse closes a connection over the limit without reading from it. It
// runs on Serve's goroutine: one more goroutine for each refused connection
// would defeat the limit.
func (s *Server) refuse(nc net.Conn, id uint64, err error) {
	nc.Close()
	s.stats.ends[ReasonConnLimit].Add(1)
	if s.ConnClosed != nil {
		s.ConnClosed(ConnInfo{ID: id, Remote: nc.RemoteAddr(), Reason: ReasonConnLimit}, err)
	}
}

// Shutdown stops accepting, then drains every connection, so that a
// graceful restart loses nothing that a logsock client sent. It shuts down
// the sending side of each connection (a FIN, with no bytes: a logsock
// client's peek before its next write sees it as the collector's close,
// writes nothing more on that connection, closes it, and holds its frames
// for its next connection), and reads on, handing over every frame, until
// the client has closed its end, or nothing has arrived at a frame
// boundary for a quarter of a second (an idle client), or, for a client
// that goes on writing (one that does not peek), at the first frame
// boundary with nothing more arrived after a second, or until ctx is done. Connections that clients opened but that were
// not yet accepted are accepted and drained too, where the listener has
// SetDeadline and SyscallConn (as TCP and Unix listeners do), except on
// Windows, which has no accept that does not wait: there the listener's
// close resets them. It waits for the connections' goroutines, and so for
// the Handler calls in progress.
//
// When ctx is done first, each connection hands over what has arrived,
// without waiting for more, and is closed; a frame that was arriving is
// lost, and counted in ServerStats.Cut. Shutdown then returns ctx.Err(),
// once the goroutines have ended.
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
		s.mu.Lock()
		for c := range s.conns {
			c.cut()
		}
		s.mu.Unlock()
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
				if nfd, aerr = acceptNow(int(fd)); aerr != syscall.EINTR {
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
		if !s.start(nc) {
			return
		}
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

// closeConns closes every connection now; each reports ErrServerClosed.
func (s *Server) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.killed.Store(true)
		c.nc.Close()
	}
}

// newConn registers an accepted connection and gives it an id. It fails
// with ErrServerClosed if the Server is closing, and with ErrConnLimit if
// MaxConns are open.
func (s *Server) newConn(nc net.Conn) (*serverConn, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil, 0, ErrServerClosed
	}
	s.stats.accepted.Add(1)
	id := s.nextID.Add(1)
	if limit := cmp.Or(s.MaxConns, DefaultMaxConns); limit > 0 && len(s.conns) >= limit {
		return nil, id, ErrConnLimit
	}
	if s.conns == nil {
		s.conns = make(map[*serverConn]struct{})
	}
	c := newServerConn(s, nc, id)
	s.conns[c] = struct{}{}
	s.stats.active.Add(1)
	s.wg.Add(1)
	if s.draining {
		c.drain()
	}
	return c, id, nil
}

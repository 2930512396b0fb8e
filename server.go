package logsock

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The defaults of Server's zero values.
const (
	defaultHandshakeTimeout = 10 * time.Second
	defaultMaxConns         = 10000
)

// Why connections end, given to ConnClosed beside the Reason they map to.
var (
	errHandshakeTimeout = errors.New("logsock: no handshake in time")
	errIdleTimeout      = errors.New("logsock: idle timeout")
	errConnLimit        = errors.New("logsock: refused: the peer's connections are at MaxConnsPerPeer")
	errPidMismatch      = errors.New("logsock: handshake pid is not the peer's pid")
	errFenced           = errors.New("logsock: a newer connection of its session replaced it")
	errAcksUnread       = errors.New("logsock: the client left acknowledgements unread")
)

// Origin is where a record comes from: its connection, and who opened it.
type Origin struct {
	Conn             uint64    // the connection's id: unique within the Server, from 1
	Pid              int32     // the pid that its handshake named
	PeerPid          int32     // who connected (SO_PEERCRED), on Unix sockets on Linux; 0: unknown
	PeerUid, PeerGid uint32    // the uid and gid of PeerPid
	Remote           net.Addr  // where it came from: over TCP, the client's IP and port
	Session          SessionID // a v2 client's session; zero on v1
	Tag              string    // a v2 client's name for itself; empty on v1
}

// Record is one message as the collector received it.
type Record struct {
	Origin
	WriterPid int32     // who wrote the frame (SO_PASSCRED), on Unix sockets on Linux; 0: unknown
	Flags     Flags     // what is unusual about it
	Msg       []byte    // the message, as sent; valid only until the Handler returns
	Time      time.Time // when the read that completed the frame returned
	Seq       uint64    // the frame's number in its session (v2); 0 on v1
	Level     Level     // its severity (v2); LevelInfo on v1
	Logged    time.Time // when the client logged it (v2); zero on v1

	conn *serverConn // a v2 record's, for Defer
}

// Flags mark what is unusual about a Record.
type Flags uint8

const (
	FlagInvalidUTF8  Flags = 1 << iota // a message that is not UTF-8, delivered as sent
	FlagPidMismatch                    // a connection whose pid is not its PeerPid
	FlagMixedWriters                   // a frame that processes tore, writing unlocked
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

// Reason is why a connection ended.
type Reason uint8

const (
	ReasonEOF              Reason = iota // the client closed it at a frame boundary, or (v2) opened another
	ReasonShutdown                       // Shutdown drained it, or Close or Shutdown's deadline cut it
	ReasonTruncated                      // it ended inside the handshake or a frame, which is dropped
	ReasonBadLength                      // a negative length, or, with CodePoints, bytes that are not UTF-8
	ReasonFrameTooLarge                  // a length above MaxFrame
	ReasonHandshakeTimeout               // no handshake within HandshakeTimeout
	ReasonIdleTimeout                    // nothing arrived for IdleTimeout
	ReasonConnLimit                      // refused: its peer was at MaxConnsPerPeer
	ReasonPidMismatch                    // closed under RejectPidMismatch
	ReasonIOError                        // the read failed (ECONNRESET, when a TCP client resets)
	ReasonBadHello                       // a v2 hello refused: answered with its status, and closed
	ReasonBadFrame                       // a v2 frame header with a level above LevelDebug
	ReasonAcksUnread                     // a v2 client left acknowledgements unread for HandshakeTimeout
)

const numReasons = ReasonAcksUnread + 1

var reasonNames = [numReasons]string{"eof", "shutdown", "truncated", "bad_length", "frame_too_large",
	"handshake_timeout", "idle_timeout", "conn_limit", "pid_mismatch", "io_error", "bad_hello", "bad_frame",
	"acks_unread"}

// String returns the reason's name: "eof", "shutdown", "truncated"...
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
	case errors.Is(err, errConnLimit): // first: it wraps what ended the refusal's drain
		return ReasonConnLimit
	case errors.Is(err, ErrServerClosed):
		return ReasonShutdown
	case errors.Is(err, errHandshakeTimeout):
		return ReasonHandshakeTimeout
	case errors.Is(err, errIdleTimeout):
		return ReasonIdleTimeout
	case errors.Is(err, errPidMismatch):
		return ReasonPidMismatch
	case errors.Is(err, errHello):
		return ReasonBadHello
	case errors.Is(err, errBadLevel):
		return ReasonBadFrame
	case errors.Is(err, errAcksUnread):
		return ReasonAcksUnread
	case errors.Is(err, errFenced):
		return ReasonEOF
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
	Origin
	Frames uint64 // frames handed to the Handler
	Reason Reason // why it ended
}

// ServerStats are a Server's counters since it started.
type ServerStats struct {
	Accepted     uint64            // connections accepted, those refused included
	Active       uint64            // connections open now
	Frames       uint64            // frames delivered
	Bytes        uint64            // their message bytes
	InvalidUTF8  uint64            // frames flagged FlagInvalidUTF8
	PidMismatch  uint64            // connections flagged FlagPidMismatch
	MixedWriters uint64            // frames flagged FlagMixedWriters
	Cut          uint64            // frames lost as they arrived: Close, or Shutdown's deadline, ended their connection
	Duplicates   uint64            // v2 frames dropped as already had (and acknowledged again)
	Sessions     uint64            // v2 sessions known now; forgotten after an hour without a connection, the longest idle beyond 100,000
	Ends         map[Reason]uint64 // connections ended, by reason
	Memory       uint64            // bytes of read buffers charged to MaxMemory now
	Paused       uint64            // connections waiting, reading nothing, for memory
}

// serverCounters are the atomics behind ServerStats. Frames and Bytes take
// a connection's delivered frames in one add when it next reads or ends,
// so that ingest does not contend on them frame by frame.
type serverCounters struct {
	accepted, frames, bytes                atomic.Uint64
	invalidUTF8, pidMismatch, mixedWriters atomic.Uint64
	cut, duplicates                        atomic.Uint64
	active                                 atomic.Int64
	ends                                   [numReasons]atomic.Uint64
}

// Server is a collector of v1 and v2 streams: it reads each connection in a
// goroutine of its own; one that fails is closed, alone.
type Server struct {
	Handler           func(rec *Record)              // called with each record, in order for one connection, concurrently for several; rec is valid until it returns (an Ack from rec.Defer, after)
	ConnClosed        func(info ConnInfo, err error) // if set, called after a connection's last Handler call, with why and the error (nil for ReasonEOF)
	DecoderConfig                                    // how streams are read; MaxFrame is checked before allocating
	HandshakeTimeout  time.Duration                  // bounds the wait for a handshake, and a v2 write; default 10 s
	IdleTimeout       time.Duration                  // if positive, closes a connection quiet for that long
	MaxConns          int                            // connections served, more wait in the backlog; default 10,000, negative none
	MaxConnsPerPeer   int                            // those of a peer (a Unix socket's uid on Linux, a TCP client's IP), one over drained for 2 s and closed; default MaxConns/2, negative none
	MaxMemory         int                            // read buffers beyond 4 KiB a connection (a reader pauses); default 128 MiB, negative none
	RejectPidMismatch bool                           // close a connection whose pid is not its PeerPid (else flag its records)

	nextID    atomic.Uint64
	stats     serverCounters
	mem       memory
	sessions  sessions
	wg        sync.WaitGroup // one per connection goroutine
	accepting sync.WaitGroup // one per Serve loop

	mu        sync.Mutex // guards the fields below
	room      sync.Cond  // on mu: a served connection ended, or the Server shuts down
	started   bool       // the limits are set
	draining  bool       // Shutdown: accept what is queued, drain every connection
	closing   bool       // no more connections, but those of a Serve after Shutdown
	killed    bool       // Close: no more connections at all
	listeners map[net.Listener]struct{}
	conns     map[*serverConn]struct{}
	served    int             // connections counted against MaxConns
	peers     map[peerKey]int // served connections by peer, for MaxConnsPerPeer
	refusing  int             // refused connections being read
}

// Stats returns the counters.
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
		Duplicates:   s.stats.duplicates.Load(),
		Sessions:     s.sessions.count(),
		Ends:         make(map[Reason]uint64),
		Memory:       uint64(max(s.mem.used.Load(), 0)),
		Paused:       uint64(max(s.mem.waiting.Load(), 0)),
	}
	for r := range s.stats.ends {
		if n := s.stats.ends[r].Load(); n > 0 {
			st.Ends[Reason(r)] = n
		}
	}
	return st
}

// Serve accepts connections on l until Shutdown or Close (ErrServerClosed) or
// the listener's error, and closes l; after Shutdown, it drains l's queue.
func (s *Server) Serve(l net.Listener) error {
	defer l.Close()
	if !s.track(l, true) {
		s.drainLate(l)
		return ErrServerClosed
	}
	defer s.accepting.Done()
	defer s.track(l, false)
	passCredListener(l)

	var backoff time.Duration
	for {
		s.awaitRoom()
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

// start serves an accepted connection in a goroutine of its own, or
// refuses it under MaxConnsPerPeer. It returns false, having closed nc, if
// the Server is closing.
func (s *Server) start(nc net.Conn) bool {
	return s.startIn(nc, nil)
}

// startIn is start for a connection counted in late, if not nil: one that
// drainLate accepts.
func (s *Server) startIn(nc net.Conn, late *sync.WaitGroup) bool {
	c := newServerConn(s, nc, s.nextID.Add(1))
	c.peerCreds() // before the goroutine starts (see peerCreds), and for the peer's uid
	c.peer, c.peerKnown = c.peerOf()
	switch s.register(c, late) {
	case ErrServerClosed:
		nc.Close()
		return false
	case errConnLimit:
		s.refuse(c)
	default:
		go c.serve()
	}
	return true
}

// refuse closes a refused connection without reading from it, when too
// many refusals are being read already. It runs on Serve's goroutine: one
// more goroutine for each would defeat the limit.
func (s *Server) refuse(c *serverConn) {
	c.nc.Close()
	s.stats.ends[ReasonConnLimit].Add(1)
	if s.ConnClosed != nil {
		s.ConnClosed(ConnInfo{Origin: c.rec.Origin, Reason: ReasonConnLimit}, errConnLimit)
	}
}

// refuseDrains bounds the refused connections read at once, and so the
// goroutines that a peer that keeps connecting can cost.
const refuseDrains = 64

// refuseCut bounds the drain of a refused connection: twice drainBusy,
// past which a client that goes on writing is stopped at a frame
// boundary; a stalled frame is cut here.
const refuseCut = 2 * drainBusy

// peerKey names a peer for MaxConnsPerPeer: an IP address (TCP), or a uid
// (a Unix socket, addr zero).
type peerKey struct {
	addr netip.Addr
	uid  uint32
}

// peerOf returns the connection's peer, if it is known: the client's IP
// address over TCP, an IPv6 one by its /64; its uid on a Unix socket
// where the kernel tells it (a PeerPid).
func (c *serverConn) peerOf() (peerKey, bool) {
	if a, ok := c.rec.Remote.(*net.TCPAddr); ok {
		ip := a.AddrPort().Addr().Unmap().WithZone("")
		if ip.Is6() {
			ip = netip.PrefixFrom(ip, 64).Masked().Addr()
		}
		return peerKey{addr: ip}, ip.IsValid()
	}
	return peerKey{uid: c.rec.PeerUid}, c.rec.PeerPid != 0
}

// awaitRoom waits while MaxConns connections are served, so that new ones
// wait in the listen backlog. It returns at once when the Server shuts
// down: Shutdown accepts what is queued, beyond the limit.
func (s *Server) awaitRoom() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.full() && !s.draining && !s.closing {
		s.room.Wait()
	}
}

// full reports whether MaxConns connections are served. s.mu is held.
func (s *Server) full() bool {
	limit := cmp.Or(s.MaxConns, defaultMaxConns)
	return limit > 0 && s.served >= limit
}

// perPeer returns the limit of MaxConnsPerPeer, 0 for none.
func (s *Server) perPeer() int {
	limit := cmp.Or(s.MaxConns, defaultMaxConns)
	switch {
	case s.MaxConnsPerPeer < 0 || limit < 0:
		return 0
	case s.MaxConnsPerPeer > 0:
		return s.MaxConnsPerPeer
	}
	return max(limit/2, 1)
}

// Shutdown stops accepting and drains each connection: it half-closes it (v2:
// sends G) and reads to the client's end; past ctx, it counts frames cut.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	s.room.Broadcast() // Serve accepts what is queued, beyond MaxConns
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

// Close closes the listeners and connections at once, and waits for them.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closing, s.killed = true, true
	s.room.Broadcast()
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
	s.acceptQueuedIn(l, nil)
}

// drainLate is Serve's when Shutdown came first: what is queued on l is
// accepted and drained, as Shutdown drains the queues of the listeners it
// knew, and drainLate waits for those connections. A program that makes its
// listeners, then calls Serve in goroutines, can be told to stop before
// they run: its clients, already connected, lost what they had sent (issue
// 20's review: 10 of 30 early SIGTERMs of logsockd lost a record).
func (s *Server) drainLate(l net.Listener) {
	s.mu.Lock()
	drain := s.draining && !s.killed
	s.setUp()
	s.mu.Unlock()
	if !drain {
		return
	}
	passCredListener(l)
	var late sync.WaitGroup
	s.acceptQueuedIn(l, &late)
	late.Wait()
}

// acceptQueuedIn is acceptQueued, its connections counted in late if not
// nil.
func (s *Server) acceptQueuedIn(l net.Listener, late *sync.WaitGroup) {
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
		if !s.startIn(nc, late) {
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
	s.setUp()
	if s.listeners == nil {
		s.listeners = make(map[net.Listener]struct{})
	}
	s.listeners[l] = struct{}{}
	s.accepting.Add(1)
	return true
}

// setUp sets the limits, at the first Serve. The caller holds mu.
func (s *Server) setUp() {
	if !s.started {
		s.started = true
		s.room.L = &s.mu
		s.mem.setLimit(s.MaxMemory)
	}
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
		c.poke() // a pause for memory
	}
}

// register counts an accepted connection and adds it to those served. It
// fails with ErrServerClosed if the Server is closing, and with
// errConnLimit if the connection is refused and is not to be read (see
// MaxConnsPerPeer). If MaxConns are served, which another Serve loop can
// have made so since this one's awaitRoom, it waits for room.
func (s *Server) register(c *serverConn, late *sync.WaitGroup) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.full() && !s.draining && !s.closing {
		s.room.Wait()
	}
	if s.killed || s.closing && late == nil {
		return ErrServerClosed
	}
	s.stats.accepted.Add(1)
	if limit := s.perPeer(); !s.draining && c.peerKnown && limit > 0 && s.peers[c.peer] >= limit {
		if s.refusing >= refuseDrains {
			return errConnLimit
		}
		s.refusing++
		c.refused = time.AfterFunc(refuseCut, c.cut)
	} else {
		s.served++
		if c.peerKnown {
			if s.peers == nil {
				s.peers = make(map[peerKey]int)
			}
			s.peers[c.peer]++
		}
	}
	if s.conns == nil {
		s.conns = make(map[*serverConn]struct{})
	}
	s.conns[c] = struct{}{}
	s.stats.active.Add(1)
	c.wg = &s.wg
	if late != nil {
		c.wg = late
	}
	c.wg.Add(1)
	if s.draining || c.refused != nil {
		c.drain()
	}
	return nil
}

// unregister removes an ended connection, making room for another.
func (s *Server) unregister(c *serverConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	if c.refused != nil {
		s.refusing--
		return
	}
	s.served--
	if c.peerKnown {
		if s.peers[c.peer]--; s.peers[c.peer] == 0 {
			delete(s.peers, c.peer)
		}
	}
	s.room.Broadcast() // a Serve loop in awaitRoom, and one in register
}

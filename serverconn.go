package logsock

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"
)

// serverConn is one accepted connection, read by its own goroutine; only
// draining and killed are touched from other goroutines.
type serverConn struct {
	s         *Server
	nc        net.Conn
	rec       Record      // reused for every frame: handlers must not keep it
	flags     Flags       // the flags of every record: FlagPidMismatch
	draining  atomic.Bool // Shutdown asked: read what has arrived, then stop
	killed    atomic.Bool // Close, or Shutdown's deadline, closed it
	drained   bool        // a drain read found nothing more: the stream stops here
	handshook bool        // a deadline now means IdleTimeout, not the handshake timeout
	heard     bool        // something has arrived: data, an end or an error
	graced    bool        // the drain's wait for a silent connection is spent

	frames, bytes   uint64 // delivered
	counted, countB uint64 // frames and bytes added to the Server's counters

	// The raw connection, and the state of its callbacks, made once so
	// that reading allocates nothing (nil rc: not a socket; no idle mode).
	rc      syscall.RawConn
	creds   bool // a Unix socket on Linux: each read tells its writer's pid
	rbuf    []byte
	rn      int
	rpid    int32
	rerr    error
	lookFn  func(fd uintptr)
	waitFn  func(fd uintptr) bool
	writers writerRing // the writer pid of each byte read and not yet consumed
}

func newServerConn(s *Server, nc net.Conn, id uint64) *serverConn {
	c := &serverConn{s: s, nc: nc}
	c.rec.Conn, c.rec.Remote = id, nc.RemoteAddr()
	c.useRaw()
	return c
}

func (c *serverConn) serve() {
	s := c.s
	err := c.read()
	c.nc.Close()
	if err != nil && c.killed.Load() {
		err = ErrServerClosed // whatever the read saw, the Server cut it
	}
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.count()
	reason := reasonOf(err)
	s.stats.active.Add(-1)
	s.stats.ends[reason].Add(1)
	if s.ConnClosed != nil {
		s.ConnClosed(ConnInfo{ID: c.rec.Conn, Pid: c.rec.Pid, PeerPid: c.rec.PeerPid, PeerUid: c.rec.PeerUid,
			PeerGid: c.rec.PeerGid, Remote: c.rec.Remote, Frames: c.frames, Reason: reason}, err)
	}
	s.wg.Done()
}

// peerCreds learns who connected a Unix socket, and asks the kernel to
// tell who writes each byte. The Server calls it as soon as it accepts:
// bytes that arrive after the accept and before the setsockopt carry no
// credentials, unless the socket had SO_PASSCRED from the listener at
// connect.
func (c *serverConn) peerCreds() {
	if _, ok := c.nc.(*net.UnixConn); !credsSupported || !ok || c.rc == nil {
		return
	}
	c.rc.Control(func(fd uintptr) {
		if pid, uid, gid, err := peerCred(int(fd)); err == nil {
			c.rec.PeerPid, c.rec.PeerUid, c.rec.PeerGid = pid, uid, gid
		}
		// Inherited from the listener where Serve could set it there;
		// set here for listeners it could not reach.
		c.creds = passCred(int(fd)) == nil
	})
}

// read runs the connection until it ends and returns why.
func (c *serverConn) read() error {
	s := c.s
	dec := NewDecoder(c, &DecoderConfig{Order: s.Order, MaxFrame: s.MaxFrame, CodePoints: s.CodePoints})

	c.nc.SetReadDeadline(time.Now().Add(cmp.Or(max(s.HandshakeTimeout, 0), DefaultHandshakeTimeout)))
	pid, err := dec.Handshake()
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return ErrHandshakeTimeout
		}
		return c.reason(err)
	}
	c.writers.take(HeaderLen)
	// A drain that began meanwhile is not lost: reads check its flag
	// before they wait, and after they set a deadline.
	c.nc.SetReadDeadline(time.Time{})
	c.handshook = true
	c.rec.Pid = pid
	if err := c.checkPid(); err != nil {
		return err
	}
	for {
		msg, err := dec.Next()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return ErrIdleTimeout
			}
			return c.reason(err)
		}
		c.deliver(msg)
	}
}

// checkPid compares the handshake's pid with the peer's, where the kernel
// tells it.
func (c *serverConn) checkPid() error {
	if c.rec.PeerPid == 0 || c.rec.PeerPid == c.rec.Pid {
		return nil
	}
	c.s.stats.pidMismatch.Add(1)
	c.flags |= FlagPidMismatch
	if c.s.RejectPidMismatch {
		return fmt.Errorf("%w: handshake pid %d, peer pid %d", ErrPidMismatch, c.rec.Pid, c.rec.PeerPid)
	}
	return nil
}

// deliver flags and counts a frame, and hands it to the Handler.
func (c *serverConn) deliver(msg []byte) {
	s := c.s
	c.frames++
	c.bytes += uint64(len(msg))
	c.rec.Flags = c.flags
	if c.creds {
		pid, mixed := c.writers.take(HeaderLen + len(msg)) // len(msg) is bytes, in CodePoints mode too
		c.rec.WriterPid = pid
		if mixed {
			c.rec.Flags |= FlagMixedWriters
			s.stats.mixedWriters.Add(1)
		}
	}
	// In CodePoints mode the Decoder has refused what is not UTF-8.
	if !s.CodePoints && !utf8.Valid(msg) {
		c.rec.Flags |= FlagInvalidUTF8
		s.stats.invalidUTF8.Add(1)
	}
	if s.Handler != nil {
		c.rec.Msg = msg
		s.Handler(&c.rec)
		c.rec.Msg = nil // the buffer may go back to the pool while the connection is idle
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

// count adds the frames delivered since the last count to the Server's
// counters: one add each for all of them.
func (c *serverConn) count() {
	if n := c.frames - c.counted; n > 0 {
		c.s.stats.frames.Add(n)
		c.s.stats.bytes.Add(c.bytes - c.countB)
		c.counted, c.countB = c.frames, c.bytes
	}
}

// drain makes the reader stop waiting: it returns what has arrived, then
// io.EOF. The flag is set before the deadline, so a read that has not yet
// blocked sees it.
func (c *serverConn) drain() {
	c.draining.Store(true)
	c.nc.SetReadDeadline(time.Now())
}

// armIdle starts the IdleTimeout for a read that may wait. (Before the
// handshake, the handshake's deadline stands.)
func (c *serverConn) armIdle() {
	if c.handshook && c.s.IdleTimeout > 0 {
		c.nc.SetReadDeadline(time.Now().Add(c.s.IdleTimeout))
	}
}

// Read is the Decoder's view of the connection: it waits for data, and
// during a drain reads what has arrived without waiting.
func (c *serverConn) Read(p []byte) (int, error) {
	if c.rc == nil {
		return c.readConn(p)
	}
	return c.readSocket(p, true)
}

// readNow reads what has arrived without waiting (idleReader), so that the
// Decoder can give its buffer back when nothing has.
func (c *serverConn) readNow(p []byte) (int, error) {
	if c.rc == nil {
		return c.readConn(p)
	}
	return c.readSocket(p, false)
}

// waitReadable waits until data, an end or an error has arrived, holding
// no buffer (idleReader). A drain that begins wakes it.
func (c *serverConn) waitReadable() error {
	if c.rc == nil {
		return nil
	}
	_, err := c.readSocket(nil, true)
	return err
}

// readSocket reads into p what has arrived, or with p nil only looks. If
// nothing has, it waits (wait) or returns errWouldBlock; during a drain it
// never waits, and nothing more means the stream stops here (io.EOF).
func (c *serverConn) readSocket(p []byte, wait bool) (int, error) {
	c.count() // the frames before this read are done
	c.rbuf = p
	err := c.readRaw(wait)
	c.rbuf = nil // the buffer may go back to the pool: do not keep it
	if err != nil {
		return 0, err
	}
	if c.rn > 0 {
		c.rec.Time = time.Now()
		if c.creds {
			c.writers.add(c.rn, c.rpid)
		}
	}
	return c.rn, c.rerr
}

func (c *serverConn) readRaw(wait bool) error {
	defer func() { c.heard = c.heard || c.rn > 0 || c.rerr != errWouldBlock }()
	for {
		if wait && !c.heard && !c.graced && c.draining.Load() {
			return c.waitSilent()
		}
		if !wait || c.draining.Load() {
			// Control, unlike Read, does not fail on a deadline in the
			// past, which drain sets to wake a waiting read.
			if err := c.rc.Control(c.lookFn); err != nil {
				return err
			}
			if wait && c.rerr == errWouldBlock {
				c.drained, c.rerr = true, io.EOF
			}
			return nil
		}
		c.armIdle()
		if c.draining.Load() {
			continue // armIdle may have replaced the drain's wake-up deadline
		}
		err := c.rc.Read(c.waitFn)
		if err == nil || !c.draining.Load() || !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		// Woken by a drain: look once more, without waiting.
	}
}

// drainGrace is how long a drain waits for a connection that has sent
// nothing yet: one that Shutdown accepted from the queue may have been
// opened, and written to, an instant before, and its bytes be in flight.
// Without the wait they were lost with it (issue 12: a client's handshake
// and 90 held frames, in a collector restarted under load).
const drainGrace = 100 * time.Millisecond

// waitSilent is the drain's read of a connection that has sent nothing
// yet: it waits up to drainGrace for its first bytes.
func (c *serverConn) waitSilent() error {
	c.graced = true
	end := time.Now().Add(drainGrace)
	for {
		c.nc.SetReadDeadline(end)
		err := c.rc.Read(c.waitFn)
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		if !time.Now().Before(end) {
			c.drained, c.rerr, c.rn = true, io.EOF, 0
			return nil
		}
		// drain's own wake-up, set just after ours: wait on.
	}
}

// readConn reads a connection that is not a socket (a wrapper, or an
// in-memory pipe): it waits in Read, and during a drain waits briefly for
// data in flight, since there is no descriptor to poll.
func (c *serverConn) readConn(p []byte) (int, error) {
	c.count()
	if !c.draining.Load() {
		c.armIdle()
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
	}
	c.nc.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	n, err := c.nc.Read(p)
	if n > 0 {
		c.rec.Time = time.Now()
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.drained, err = true, io.EOF
	}
	return n, err
}

// writerRing follows, in stream order, which process wrote the bytes read
// and not yet consumed: a segment per read (the kernel never mixes writers
// in one read), merged with the previous one when the writer is the same.
// The handshake and each frame take their bytes from the front.
//
// It is bounded without allocating: the Decoder reads only when what it
// holds is a strict prefix of the handshake or frame it decodes, so at each
// read every segment held belongs to that one unit, and merging the oldest
// two when the ring is full keeps that unit's verdict (its first writer,
// and whether it has others) exact.
type writerRing struct {
	seg        [4]writerSegment
	head, size int
}

type writerSegment struct {
	n     int   // bytes
	pid   int32 // their writer, 0 if unknown
	mixed bool  // merged from segments of different writers
}

// add appends n bytes written by pid.
func (r *writerRing) add(n int, pid int32) {
	if r.size > 0 {
		if t := &r.seg[(r.head+r.size-1)%len(r.seg)]; t.pid == pid && !t.mixed {
			t.n += n
			return
		}
	}
	if r.size == len(r.seg) {
		a, b := r.seg[r.head], &r.seg[(r.head+1)%len(r.seg)]
		b.mixed = a.mixed || b.mixed || otherWriter(a.pid, b.pid)
		b.n += a.n
		b.pid = a.pid
		r.head = (r.head + 1) % len(r.seg)
		r.size--
	}
	r.seg[(r.head+r.size)%len(r.seg)] = writerSegment{n: n, pid: pid}
	r.size++
}

// take consumes n bytes and returns the writer of the first, and whether
// another process wrote any of the others.
func (r *writerRing) take(n int) (pid int32, mixed bool) {
	if r.size == 0 {
		return 0, false
	}
	pid = r.seg[r.head].pid
	for n > 0 && r.size > 0 {
		s := &r.seg[r.head]
		mixed = mixed || s.mixed || otherWriter(pid, s.pid)
		if n < s.n {
			s.n -= n
			return pid, mixed
		}
		n -= s.n
		r.head = (r.head + 1) % len(r.seg)
		r.size--
	}
	return pid, mixed
}

// otherWriter reports whether a and b are two known, different writers:
// bytes without credentials (pid 0) do not make a frame mixed.
func otherWriter(a, b int32) bool {
	return a != b && a != 0 && b != 0
}

package logsock

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"
)

// serverConn is one accepted connection, read by its own goroutine; only
// draining, cutting, killed, fenced, v1, wake and v2's shared fields are
// touched from other goroutines.
type serverConn struct {
	s          *Server
	wg         *sync.WaitGroup // Done when the connection ends: the Server's, or drainLate's
	nc         net.Conn
	dec        *Decoder
	rec        Record        // reused for every frame: handlers must not keep it
	flags      Flags         // the flags of every record: FlagPidMismatch
	draining   atomic.Bool   // Shutdown asked: read on to the client's end (see drain)
	cutting    atomic.Bool   // Shutdown's deadline: read what has arrived, then stop
	killed     atomic.Bool   // Close closed it
	fenced     atomic.Bool   // a newer connection of its v2 session closed it
	v1         atomic.Bool   // its handshake was v1's: drain half-closes it at once
	v2         *connV2       // set by the reader before it reads a v2 hello
	bye        bool          // goodbye is said
	wake       chan struct{} // wakes a pause for memory: granted, cut or killed
	handshook  bool          // a deadline now means IdleTimeout, not the handshake timeout
	hsDeadline time.Time     // the handshake's
	inTLS      atomic.Bool   // in a TLS handshake, which a drain does not break at once (see drain)

	// Set before the goroutine starts, for the Server's counts.
	peer      peerKey
	peerKnown bool
	refused   *time.Timer // MaxConnsPerPeer refused it: cuts its drain (see refuse)

	// The drain's state, the reader's own.
	drainFrom time.Time // when the reader saw the drain begin
	cutRead   int       // bytes read after a cut (see cutBudget)
	drained   bool      // the drain ended the stream here
	readShut  bool      // the drain shut the socket's reading side (shutRead)
	lastLook  bool      // readConn's drain looks once more before it stops

	frames, bytes   uint64 // delivered
	dups            uint64 // v2 duplicates not yet counted
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
	c := &serverConn{s: s, nc: nc, wake: make(chan struct{}, 1)}
	c.rec.Conn, c.rec.Remote, c.rec.Level = id, nc.RemoteAddr(), LevelInfo
	c.dec = NewDecoder(c, &s.DecoderConfig)
	c.dec.src = c
	c.useRaw()
	return c
}

func (c *serverConn) serve() {
	s := c.s
	err := c.read()
	if c.v2 != nil {
		err = c.finish(err)
	}
	c.nc.Close()
	// A frame begun and not finished when the Server ended the stream is
	// lost: counted, never silent. (One that the client cut is its own.)
	if c.dec.buffered() > 0 && (c.drained || c.killed.Load()) {
		s.stats.cut.Add(1)
	}
	c.dec.free()
	if err != nil && c.killed.Load() {
		err = ErrServerClosed // whatever the read saw, the Server cut it
	}
	if c.refused != nil {
		c.refused.Stop()
		err = refusal(err)
	}
	s.unregister(c)
	c.count()
	reason := reasonOf(err)
	s.stats.active.Add(-1)
	s.stats.ends[reason].Add(1)
	if s.ConnClosed != nil {
		s.ConnClosed(ConnInfo{Origin: c.rec.Origin, Frames: c.frames, Reason: reason}, err)
	}
	c.wg.Done()
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
	c.hsDeadline = time.Now().Add(cmp.Or(max(c.s.HandshakeTimeout, 0), defaultHandshakeTimeout))
	c.nc.SetReadDeadline(c.hsDeadline)
	if err := c.tlsHandshake(); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return errHandshakeTimeout
		}
		return c.reason(err)
	}
	if err := c.handshake(); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return errHandshakeTimeout
		}
		return c.reason(err)
	}
	// A drain that began meanwhile is not lost: reads check its flag
	// before they wait, and after they set a deadline.
	c.nc.SetReadDeadline(time.Time{})
	c.handshook = true
	if c.draining.Load() {
		c.goodbye()
	}
	for {
		msg, err := c.dec.Next()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return errIdleTimeout
			}
			return c.reason(err)
		}
		if c.v2 == nil {
			c.deliver(msg)
		} else if err := c.deliver2(msg); err != nil {
			return err
		}
	}
}

// tlsHandshake completes the TLS handshake of a TLS connection before
// anything is read from it, within the handshake timeout. A tls.Conn whose
// handshake failed fails every later read at once with the same error, a
// deadline's too: left to the first Read, a handshake that a drain's
// wake-up broke made the reader spin on that error (a Shutdown waited 14 to
// 98 s for it, under the race detector on a busy machine).
func (c *serverConn) tlsHandshake() error {
	tc, ok := c.nc.(interface{ Handshake() error })
	if !ok {
		return nil
	}
	c.inTLS.Store(true)
	defer c.inTLS.Store(false)
	if c.draining.Load() {
		c.nc.SetReadDeadline(time.Now().Add(drainBusy)) // see drain
	}
	return tc.Handshake()
}

// handshake reads the stream's handshake, v1's pid or v2's hello.
func (c *serverConn) handshake() error {
	v2, err := c.dec.opensHello()
	if err != nil {
		return err
	}
	if v2 {
		return c.helloV2()
	}
	pid, err := c.dec.Handshake()
	if err != nil {
		return err
	}
	c.v1.Store(true)
	c.writers.take(headerLen)
	c.rec.Pid = pid
	return c.checkPid()
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
		return fmt.Errorf("%w: handshake pid %d, peer pid %d", errPidMismatch, c.rec.Pid, c.rec.PeerPid)
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
		pid, mixed := c.writers.take(c.dec.hdr + len(msg)) // len(msg) is bytes, in CodePoints mode too
		c.rec.WriterPid = pid
		if mixed {
			c.rec.Flags |= FlagMixedWriters
			s.stats.mixedWriters.Add(1)
		}
	}
	// In CodePoints mode the Decoder has refused what is not UTF-8.
	if !c.dec.codePoints && !utf8.Valid(msg) {
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
	if err == io.EOF && (c.drained || c.draining.Load()) {
		return ErrServerClosed // the drain ended it, at a frame boundary
	}
	if err == io.EOF {
		return nil
	}
	return err
}

// refusal is the error of a connection that MaxConnsPerPeer refused:
// errConnLimit, and what else ended its drain, if anything did.
func refusal(err error) error {
	if err == nil || errors.Is(err, ErrServerClosed) {
		return errConnLimit
	}
	return fmt.Errorf("%w: %w", errConnLimit, err)
}

// takeBuf lends the Decoder a buffer charged to the Server's memory
// budget (bufferSource). When it must wait, the connection pauses: it
// reads nothing, holding what it has, until memory frees, or until the
// Server cuts or closes it (issue 20). The client's bytes wait in the
// kernel's socket buffer meanwhile, and neither the handshake timeout nor
// IdleTimeout runs: the wait is the Server's, not the client's.
//
// A connection that is not a socket (a TLS connection; all of them on
// Windows) cannot tell that it is idle, so it would hold a buffer for as
// long as it stays open: it takes its buffer of maxReadBuf from Go's
// heap, uncharged, as before the budget (MaxConns bounds those), and
// gives a frame's buffer back as soon as the frame is consumed.
func (c *serverConn) takeBuf(n int, wait bool, holding int) ([]byte, error) {
	if c.rc == nil && n == maxReadBuf {
		return heapBufs.Get().(*[maxReadBuf]byte)[:], nil
	}
	m := &c.s.mem
	size := bufSize(n)
	if !wait {
		if !m.tryCharge(size) {
			return nil, nil
		}
	} else if w := m.charge(size, int64(holding), c.wake); w != nil {
		if err := c.pause(w); err != nil {
			return nil, err
		}
		// The client may have left while it waited: then the memory goes
		// to the next at once, rather than to bytes that end short of the
		// frame (issue 20: 873 paused clients, gone, kept the RSS at the
		// budget for 4 s before this).
		if c.clientLeft(n) {
			m.uncharge(size)
			return nil, io.EOF
		}
	}
	b, err := m.buf(n)
	if err != nil {
		m.uncharge(size)
		return nil, err
	}
	return b, nil
}

func (c *serverConn) giveBuf(b []byte) {
	if c.rc == nil && cap(b) == maxReadBuf {
		heapBufs.Put((*[maxReadBuf]byte)(b[:maxReadBuf]))
		return
	}
	c.s.mem.free(b)
}

// heapBufs are the buffers of maxReadBuf of the connections that are not
// sockets (see takeBuf).
var heapBufs = sync.Pool{New: func() any { return new([maxReadBuf]byte) }}

// keepBuf keeps a frame's buffer for the next frames while no connection
// waits for memory, where an idle connection gives it back (a socket).
func (c *serverConn) keepBuf() bool { return c.rc != nil && c.s.mem.waiting.Load() == 0 }

// clientLeft reports whether the client has ended its stream short of the
// n bytes of the frame being read: what is left is read by the Decoder as
// a truncated frame, without a buffer for the frame. Only Linux tells.
func (c *serverConn) clientLeft(n int) bool {
	missing := n - c.dec.buffered()
	if c.rc == nil || n <= maxReadBuf || missing <= 0 {
		return false
	}
	left := false
	c.rc.Control(func(fd uintptr) { left = closedShort(int(fd), missing) })
	return left
}

// pause waits until the budget grants w. A cut stops the stream there
// (what it holds of a frame is lost, and counted in ServerStats.Cut); so
// does Close.
func (c *serverConn) pause(w *memWaiter) error {
	m := &c.s.mem
	for !w.granted.Load() {
		if c.cutting.Load() || c.killed.Load() || c.fenced.Load() {
			if !m.cancel(w) {
				m.uncharge(w.n) // granted meanwhile
			}
			if c.killed.Load() || c.fenced.Load() {
				return net.ErrClosed
			}
			c.stop()
			return io.EOF
		}
		<-c.wake
	}
	return nil
}

// poke wakes a pause, to look at the flags again.
func (c *serverConn) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// count adds the frames delivered since the last count to the Server's
// counters: one add each for all of them.
func (c *serverConn) count() {
	if n := c.frames - c.counted; n > 0 {
		c.s.stats.frames.Add(n)
		c.s.stats.bytes.Add(c.bytes - c.countB)
		c.counted, c.countB = c.frames, c.bytes
	}
	if c.dups > 0 {
		c.s.stats.duplicates.Add(c.dups)
		c.dups = 0
	}
}

// drainQuiet is how long a drain waits, at a frame boundary, for more
// bytes from a client that has not closed its end. A logsock client sees
// the drain's FIN with the peek it makes before a write, once
// PeekInterval (10 ms by default) has passed since the last one: it then
// writes nothing more on the connection and closes it, and the drain ends
// at once. A client that does not close is idle, or does not peek; a
// frame that one writes after the drain has ended is lost. The wait is
// counted from the last bytes that arrived, so a client that wrote
// frames an instant before it saw the FIN, or a connection that Shutdown
// accepted from the queue just after it was opened, is read whole (issue
// 12: a client's handshake and 90 held frames were lost without such a
// wait). It is what a Shutdown with idle clients costs.
const drainQuiet = 250 * time.Millisecond

// drainBusy is how long a drain reads a client that goes on writing
// before it stops at the next frame boundary where nothing more has
// arrived. A logsock client stops within PeekInterval of the FIN, unless
// its peek is off; one that does not peek (the article's client, a child
// in another language) never does, and would keep a Shutdown until its
// deadline. The frames such a client writes after the end are lost, as
// they would be at any close.
const drainBusy = time.Second

// cutBudget bounds what a connection reads after Shutdown's deadline cut
// it: what had arrived by then, but not a stream that goes on for ever.
// It is more than a socket's receive buffer can hold on Linux (tcp_rmem's
// default maximum is 6 MiB).
const cutBudget = 8 << 20

// drain begins the connection's drain, at Shutdown. On v1 it shuts down
// the sending side (a FIN, which carries no byte of the protocol: the
// peek that a logsock client makes before it writes reads it as the
// collector's close, so the client stops writing on this connection and
// closes its end); on v2 the reader sends G (goodbye), after the
// server's hello; before the handshake, the reader says either once it
// has read it. And it wakes the reader, which reads on until the
// client's end, or drainQuiet at a frame boundary with nothing arriving,
// or Shutdown's deadline (cut). The flag is set before the deadline, so a
// read that has not yet blocked sees it.
func (c *serverConn) drain() {
	c.draining.Store(true)
	if c.v1.Load() {
		c.closeWrite()
	}
	if c.inTLS.Load() {
		// A TLS handshake under way takes milliseconds: a drain that broke
		// it would lose what the client, its own side done, has begun to
		// send. It gets as long as a busy drain, then ends unless it is
		// done (the reader's next read sees the drain).
		c.nc.SetReadDeadline(time.Now().Add(drainBusy))
		return
	}
	c.nc.SetReadDeadline(time.Now())
}

// closeWrite half-closes the connection, if it can.
func (c *serverConn) closeWrite() {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}

// cut ends the drain at Shutdown's deadline: the reader reads what has
// arrived, without waiting (up to cutBudget), and stops there.
func (c *serverConn) cut() {
	c.cutting.Store(true)
	c.nc.SetReadDeadline(time.Now())
	c.nc.SetWriteDeadline(time.Now()) // a v2 write waiting for room (see send)
	c.poke()
}

// stop is the drain's end of the stream: nothing more is read.
func (c *serverConn) stop() {
	c.drained, c.rerr, c.rn = true, io.EOF, 0
}

// armWait sets the read deadline for a read that may wait, and returns
// it: the handshake's, or IdleTimeout's, or zero for none; and during a
// drain, at a frame boundary, the end of the quiet wait (quiet), if it
// comes first. Out of a drain, without IdleTimeout, it sets nothing: the
// common read costs no timer.
func (c *serverConn) armWait() (deadline time.Time, quiet bool) {
	switch {
	case !c.handshook:
		deadline = c.hsDeadline
	case c.s.IdleTimeout > 0:
		deadline = time.Now().Add(c.s.IdleTimeout)
	}
	if !c.draining.Load() {
		if c.handshook && c.s.IdleTimeout > 0 {
			c.nc.SetReadDeadline(deadline)
		}
		if !c.draining.Load() {
			return deadline, false
		}
		// The drain began: its wake-up may have been replaced just now.
	}
	if c.drainFrom.IsZero() {
		c.drainFrom = time.Now()
		c.goodbye()
	}
	if c.dec.buffered() == 0 {
		end := c.drainFrom
		if c.rec.Time.After(end) {
			end = c.rec.Time
		}
		if end = end.Add(drainQuiet); deadline.IsZero() || end.Before(deadline) {
			deadline, quiet = end, true
		}
	}
	c.nc.SetReadDeadline(deadline)
	return deadline, quiet
}

// drainDone reports whether a drain that has lasted drainBusy is at a
// frame boundary: the stream stops there once nothing more has arrived.
func (c *serverConn) drainDone() bool {
	return !c.drainFrom.IsZero() && c.dec.buffered() == 0 && time.Since(c.drainFrom) >= drainBusy
}

// woken reports, for a read that failed at a deadline, whether the
// deadline was a wake-up (drain's or cut's) rather than the one set.
func woken(deadline time.Time) bool {
	return deadline.IsZero() || time.Now().Before(deadline)
}

// Read is the Decoder's view of the connection: it waits for data, and
// during a drain reads on as drain says.
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
// nothing has, it waits (wait) or returns errWouldBlock.
func (c *serverConn) readSocket(p []byte, wait bool) (int, error) {
	c.count() // the frames before this read are done
	if c.v2 != nil {
		if err := c.ackRead(); err != nil {
			return 0, err
		}
	}
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
	for {
		if !wait || c.cutting.Load() || c.drainDone() || c.readShut {
			if wait && c.cutRead >= cutBudget {
				c.stop()
				return nil
			}
			// Control, unlike Read, does not fail on a deadline in the
			// past, which drain and cut set to wake a waiting read.
			if err := c.rc.Control(c.lookFn); err != nil {
				return err
			}
			switch {
			case wait && c.rerr == errWouldBlock:
				if c.shutRead() {
					continue // and read what came before it
				}
				c.stop() // what has arrived is read
			case wait && c.readShut && c.rerr == io.EOF:
				c.stop() // SHUT_RD's end, once what came before it is read
			}
			if c.cutting.Load() {
				c.cutRead += c.rn
			}
			return nil
		}
		deadline, quiet := c.armWait()
		if c.cutting.Load() {
			continue // armWait may have replaced the cut's wake-up
		}
		err := c.rc.Read(c.waitFn)
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		switch {
		case c.cutting.Load() || woken(deadline):
			// Woken by drain or cut: look again.
		case quiet:
			// The deadline may have passed while this reader waited for a
			// processor, and a read whose deadline has passed fails without
			// looking: look now, so that what arrived meanwhile is read
			// rather than lost in the close (issue 17's stress runs: 1 frame
			// in 50,000, over TCP and Unix, under load 10).
			if err := c.rc.Control(c.lookFn); err != nil {
				return err
			}
			if c.rerr != errWouldBlock {
				return nil // data, the end, or an error
			}
			if c.shutRead() {
				continue
			}
			c.stop()
			return nil
		default:
			return err // the handshake's timeout, or IdleTimeout
		}
	}
}

// shutRead is the drain's last step on a Unix socket, once it has decided
// to stop: shutdown(SHUT_RD), after which the client's writes fail
// (EPIPE), so a frame it writes after the drain's last read is held and
// sent again rather than lost in the close; what arrived before is still
// read. It reports whether it shut the socket now; the reads that follow
// do not wait. Over TCP, SHUT_RD tells the client nothing: there a frame
// written between the drain's last read and its close is lost, which
// takes a client that did not peek for drainQuiet, or at all (issue 17's
// stress run: 1 frame in 50,250, over a Unix socket, before this).
func (c *serverConn) shutRead() bool {
	if c.readShut || c.killed.Load() {
		return false
	}
	if _, ok := c.nc.(*net.UnixConn); !ok {
		return false
	}
	c.readShut = true
	return c.rc.Control(func(fd uintptr) { shutdownRead(int(fd)) }) == nil
}

// connLook is how long a read of a connection that is not a socket waits
// for what has arrived, after a cut, since there is no descriptor to read
// without waiting.
const connLook = 20 * time.Millisecond

// readConn reads a connection that is not a socket (a wrapper such as a
// TLS connection, or an in-memory pipe) through its Read, with the same
// waits as readRaw.
func (c *serverConn) readConn(p []byte) (int, error) {
	c.count()
	if c.v2 != nil {
		if err := c.ackRead(); err != nil {
			return 0, err
		}
	}
	var look time.Time // this call's look at what has arrived, once begun
	for {
		var deadline time.Time
		quiet := false
		if c.cutting.Load() || c.drainDone() || c.lastLook {
			if c.cutRead >= cutBudget {
				c.drained = true
				return 0, io.EOF
			}
			// Set once: a read that fails before it, woken or failing at
			// once, is tried again only until then.
			if look.IsZero() {
				look = time.Now().Add(connLook)
			}
			deadline, quiet = look, true
			c.nc.SetReadDeadline(deadline)
		} else {
			deadline, quiet = c.armWait()
			if c.cutting.Load() {
				continue
			}
		}
		n, err := c.nc.Read(p)
		if n > 0 {
			c.rec.Time = time.Now()
			if c.cutting.Load() {
				c.cutRead += n
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				err = nil
			}
			return n, err
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		switch {
		case !quiet && (c.cutting.Load() || woken(deadline)):
		case quiet && !woken(deadline) && !c.lastLook:
			c.lastLook = true // once more, as readRaw looks: the deadline may have passed unread
		case quiet && !woken(deadline):
			c.drained = true
			return 0, io.EOF
		case quiet:
		default:
			return 0, err
		}
	}
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

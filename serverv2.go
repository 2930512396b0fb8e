package logsock

// A serverConn's protocol v2 (issue 19): the hello, the frames' numbers,
// the acknowledgements and the goodbye. The reader acknowledges what it
// has handed over before each read; Ack.Done's acknowledgements go out
// from a timer, coalesced.

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ackDelay is how long the acknowledgement of a deferred record waits for
// others to go with it.
const ackDelay = 2 * time.Millisecond

// connV2 is a v2 connection's state.
type connV2 struct {
	sess *session
	base uint64 // the session's last frame taken when the connection began: frames up to it are duplicates

	// The reader's own.
	prev    uint64 // the last frame read, whose number the next one's follows (expandSeq)
	last    uint64 // the last frame handed to the Handler
	flushed uint64 // last, when the reader last sent acknowledgements
	dirty   bool   // duplicates read since: the session's acknowledged number may cover them
	// Record.Defer's, published to deferred and pending with handled
	// (publish): an atomic store a record was 2% of logsockd's CPU.
	deferLast, deferFirst uint64

	// What advance reads, from any goroutine, with sessions.mu held.
	handled  atomic.Uint64 // last, published before each read
	deferred atomic.Uint64 // the last frame deferred (Record.Defer)
	pending  atomic.Uint64 // the first frame deferred after all before were done
	done     atomic.Uint64 // the last frame whose Ack.Done was called
	ended    bool          // guarded by sessions.mu: the reader has ended
	final    uint64        // guarded by sessions.mu: last, then

	closing atomic.Bool   // the reader waits for Done before it ends (awaitDone)
	doneCh  chan struct{} // then Done signals it
	over    atomic.Bool   // the reader has ended: Done's acknowledgement goes on the session's open connection
	gone    chan struct{} // closed when the reader has ended

	armed atomic.Bool // timer is set
	timer *time.Timer // sends Done's acknowledgements

	wmu        sync.Mutex // guards the fields below, and serialises the writes
	sent       uint64     // the last frame acknowledged on the wire
	closed     bool       // nothing more is written
	err        error      // the client left what was written unread
	wbuf       [serverHelloLen]byte
	pend       []byte // what the socket did not take of a message (send), in pendBuf
	pendBuf    [serverHelloLen]byte
	pendSince  time.Time // when the socket last took some of pend
	byePending bool      // G waits behind pend
	out        []byte    // writeNow's
	wn         int
	werr       error
	writeFn    func(fd uintptr)
}

// ackable returns the last frame of the connection that can be
// acknowledged: every one up to it has been handed over, and those
// deferred are done. handled is read first: the deferrals of the frames
// up to it are then seen. With deferrals outstanding, the frames before
// the first of them are.
func (v *connV2) ackable() uint64 {
	h := v.handled.Load()
	d := v.deferred.Load()
	p := v.pending.Load()
	n := v.done.Load()
	switch {
	case n >= d:
		return max(h, n)
	case p > n:
		return p - 1
	}
	return n
}

// helloV2 reads and answers a v2 hello, which the stream opens with. A
// session's older connection is fenced first (sessions.begin).
func (c *serverConn) helloV2() error {
	v := &connV2{doneCh: make(chan struct{}, 1), gone: make(chan struct{})}
	v.timer = time.AfterFunc(time.Hour, c.ackTimer)
	v.timer.Stop()
	v.writeFn = c.writeRaw
	c.v2 = v
	c.smallSendBuf()
	h, status, err := c.dec.hello()
	if err != nil && !errors.Is(err, errHello) {
		return err // a read's: a timeout, or a stream cut short
	}
	if err == nil {
		c.writers.take(helloLen + len(h.tag))
		c.rec.Pid, c.rec.Session, c.rec.Tag, c.rec.conn = h.pid, h.session, h.tag, c
		if err = c.checkPid(); err != nil {
			status = helloBad
		}
	}
	answer := serverHello{status: status, maxFrame: int32(min(c.dec.limit, math.MaxInt32))}
	if err == nil {
		answer.acked = c.s.sessions.begin(c, h.session)
		v.prev = h.next - 1
	}
	v.wmu.Lock()
	defer v.wmu.Unlock()
	v.sent = answer.acked
	if werr := c.send(c.dec.order.appendServerHello(v.wbuf[:0], answer), true); werr != nil && err == nil {
		err = werr
	}
	return err
}

// deliver2 hands a v2 frame to the Handler, or drops it as a duplicate.
func (c *serverConn) deliver2(msg []byte) error {
	low, unixNano, level, err := c.dec.header2(len(msg))
	if err != nil {
		return err
	}
	v := c.v2
	seq := expandSeq(v.prev, low)
	v.prev = seq
	if seq <= v.base {
		c.dups++
		v.dirty = true
		if c.creds {
			c.writers.take(header2Len + len(msg))
		}
		return nil
	}
	c.rec.Seq, c.rec.Level, c.rec.Logged = seq, level, time.Unix(0, unixNano)
	c.deliver(msg)
	v.last = seq
	return nil
}

// ackRead publishes, before a read, what the reader has handed over since
// the last, and has the timer acknowledge it within ackDelay: one
// acknowledgement for all the frames of those milliseconds. Sent before
// each read, a client in direct mode, one frame a read, cost the
// collector a write(2) a frame, and both sides a quarter of their speed
// (bench, acks section, direct tcp/1g: 0.73x of v1).
func (c *serverConn) ackRead() error {
	v := c.v2
	if v.last == v.flushed && !v.dirty {
		return nil
	}
	v.flushed, v.dirty = v.last, false
	v.publish()
	c.kickAcks()
	return nil
}

// publish makes the frames handed over, and the deferrals among them,
// visible to ackable: the deferrals first, which ackable reads after
// handled.
func (v *connV2) publish() {
	if v.deferLast != v.deferred.Load() {
		v.pending.Store(v.deferFirst)
		v.deferred.Store(v.deferLast)
	}
	v.handled.Store(v.last)
}

// kickAcks has the timer send Done's acknowledgements, unless it is set.
func (c *serverConn) kickAcks() {
	v := c.v2
	if !v.armed.Load() && v.armed.CompareAndSwap(false, true) {
		v.timer.Reset(ackDelay)
	}
}

func (c *serverConn) ackTimer() {
	c.v2.armed.Store(false)
	if c.sendAcks(true) != nil {
		c.nc.Close() // the reader ends, with the error
	}
}

// sendAcks sends the session's acknowledged number, if it has moved. Its
// error is the connection's end: a client that leaves acknowledgements
// unread until the write's deadline.
func (c *serverConn) sendAcks(wait bool) error {
	v := c.v2
	t := &c.s.sessions
	t.mu.Lock()
	if v.sess == nil {
		// Not yet begun (it waits for the connection it fenced): its
		// hello will carry the number.
		t.mu.Unlock()
		return nil
	}
	n, open := t.advance(v.sess)
	t.mu.Unlock()
	if open != nil && open != c {
		open.kickAcks() // the frames of an ended connection: acknowledged on the open one
	}
	v.wmu.Lock()
	defer v.wmu.Unlock()
	if v.closed {
		return v.err
	}
	if ok, err := c.flushPend(wait); err != nil {
		return v.failed(err)
	} else if !ok {
		return nil // the timer tries again, with the newest number
	}
	if v.byePending {
		v.byePending = false
		v.wbuf[0] = msgGoodbye
		if err := c.send(v.wbuf[:1], wait); err != nil {
			return v.failed(err)
		}
		if len(v.pend) > 0 {
			return nil
		}
	}
	if n <= v.sent {
		return nil
	}
	if err := c.send(c.dec.order.appendAck(v.wbuf[:0], n), wait); err != nil {
		return v.failed(err)
	}
	v.sent = n
	return nil
}

// failed stops the writes after err, and returns it if it ends the
// connection: a client that leaves what is written unread. Any other
// (the client has closed) leaves the reader to read to the end. wmu is
// held.
func (v *connV2) failed(err error) error {
	v.closed = true
	if errors.Is(err, errAcksUnread) {
		v.err = err
	}
	return v.err
}

// send writes b, a message, without waiting: what the socket does not
// take now is kept (pend), and written before anything else, by the next
// send or by the timer, which retries while something is kept. So the
// reader never waits on a client that reads its acknowledgements late
// (a direct-mode client reads them between its writes: a reader that
// waited for room deadlocked with a client waiting for room to write, in
// TestAcksCrashUnderLoad), and acknowledgements coalesce: each says all
// that came before. A connection on which nothing is taken for
// HandshakeTimeout is ended, errAcksUnread. A connection that is not a
// socket (TLS) has no write that does not wait: unless wait allows it (the
// hello, the timer's goroutine, the end), the message is kept for the
// timer to write. The caller has called flushPend, and wmu is held.
func (c *serverConn) send(b []byte, wait bool) error {
	v := c.v2
	if c.rc == nil {
		if wait {
			return c.sendWait(b)
		}
		v.pend = append(v.pendBuf[:0], b...)
		v.pendSince = time.Now()
		c.retryAcks()
		return nil
	}
	n, err := c.writeNow(b)
	if err != nil {
		return err
	}
	if n < len(b) {
		v.pend = append(v.pendBuf[:0], b[n:]...)
		v.pendSince = time.Now()
		c.retryAcks()
	}
	return nil
}

// flushPend writes what send kept, and reports whether all of it is
// written; on a connection that is not a socket, only if wait allows
// (see send). wmu is held.
func (c *serverConn) flushPend(wait bool) (bool, error) {
	v := c.v2
	if len(v.pend) == 0 {
		return true, nil
	}
	if c.rc == nil {
		if !wait {
			c.retryAcks()
			return false, nil
		}
		if err := c.sendWait(v.pend); err != nil {
			return false, err
		}
		v.pend = v.pend[:0]
		return true, nil
	}
	n, err := c.writeNow(v.pend)
	if err != nil {
		return false, err
	}
	if n > 0 {
		v.pend = v.pend[n:]
		v.pendSince = time.Now()
	}
	if len(v.pend) == 0 {
		return true, nil
	}
	if timeout := cmp.Or(max(c.s.HandshakeTimeout, 0), defaultHandshakeTimeout); time.Since(v.pendSince) > timeout {
		return false, fmt.Errorf("%w for %v: its socket's send buffer stayed full", errAcksUnread, timeout)
	}
	c.retryAcks()
	return false, nil
}

// sendWait writes b whole through a connection that is not a socket (a
// TLS one), within the handshake timeout. wmu is held.
func (c *serverConn) sendWait(b []byte) error {
	timeout := cmp.Or(max(c.s.HandshakeTimeout, 0), defaultHandshakeTimeout)
	c.nc.SetWriteDeadline(time.Now().Add(timeout))
	if c.cutting.Load() {
		c.nc.SetWriteDeadline(time.Now()) // cut may have set its deadline just before
	}
	if _, err := c.nc.Write(b); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) && !c.cutting.Load() {
			return fmt.Errorf("%w for %v: its socket's send buffer stayed full", errAcksUnread, timeout)
		}
		return err
	}
	return nil
}

// ackRetry is how often a kept acknowledgement is tried again.
const ackRetry = 10 * time.Millisecond

// retryAcks has the timer try again, unless it is set.
func (c *serverConn) retryAcks() {
	v := c.v2
	if !v.armed.Load() && v.armed.CompareAndSwap(false, true) {
		v.timer.Reset(ackRetry)
	}
}

// goodbye tells the client, once its handshake is read, that the Server
// shuts down: v1's half-close, or v2's G.
func (c *serverConn) goodbye() {
	if c.bye || !c.handshook {
		return
	}
	c.bye = true
	v := c.v2
	if v == nil {
		c.closeWrite()
		return
	}
	v.wmu.Lock()
	defer v.wmu.Unlock()
	if v.closed {
		return
	}
	ok, err := c.flushPend(false)
	if err == nil && !ok {
		v.byePending = true // after what is kept: sendAcks sends it
		return
	}
	if err == nil {
		v.wbuf[0] = msgGoodbye
		err = c.send(v.wbuf[:1], false)
	}
	if err != nil && v.failed(err) != nil {
		c.nc.Close() // the reader ends, with the error
	}
}

// finish ends a v2 connection's reading, whose error was err: it sends
// the last acknowledgement (on a clean end, once the deferred records
// are done, for up to drainQuiet), and returns the connection's error.
func (c *serverConn) finish(err error) error {
	v := c.v2
	killed, fenced := c.killed.Load(), c.fenced.Load()
	if v.sess != nil && !killed && !fenced {
		v.publish()
		if err == nil || errors.Is(err, ErrServerClosed) {
			c.awaitDone()
		}
		c.sendAcks(true)
		if c.flushLast() {
			c.sendAcks(true)
		}
	}
	v.wmu.Lock()
	v.closed = true
	werr := v.err
	v.wmu.Unlock()
	v.timer.Stop()
	c.s.sessions.end(c)
	v.over.Store(true)
	close(v.gone)
	switch {
	case killed:
		return err
	case werr != nil:
		return werr
	case fenced:
		return errFenced
	}
	return err
}

// flushLast writes what send kept, waiting for room for up to
// drainQuiet, as the connection ends: so that its last acknowledgement
// reaches a client that reads it late. It reports whether it wrote
// anything.
func (c *serverConn) flushLast() bool {
	v := c.v2
	v.wmu.Lock()
	defer v.wmu.Unlock()
	if len(v.pend) == 0 || v.closed || c.cutting.Load() {
		return false
	}
	c.nc.SetWriteDeadline(time.Now().Add(drainQuiet))
	_, err := c.nc.Write(v.pend)
	c.nc.SetWriteDeadline(time.Time{})
	v.pend = nil
	return err == nil
}

// awaitDone waits, for up to drainQuiet, for the Done of the records the
// Handler deferred, unless Shutdown's deadline or Close comes first.
func (c *serverConn) awaitDone() {
	v := c.v2
	if v.done.Load() >= v.deferred.Load() {
		return
	}
	v.closing.Store(true)
	t := time.NewTimer(drainQuiet)
	defer t.Stop()
	for v.done.Load() < v.deferred.Load() && !c.cutting.Load() && !c.killed.Load() {
		select {
		case <-v.doneCh:
		case <-c.wake:
		case <-t.C:
			return
		}
	}
}

// fence closes the connection for a newer one of its session.
func (c *serverConn) fence() {
	c.fenced.Store(true)
	c.nc.Close()
	c.poke() // a pause for memory
}

package logsock

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// direct is the sender of direct mode: each call writes its own frame, on
// the caller's goroutine, holding the link's write role; the frames held
// while the collector is unreachable go out during later calls. It starts
// no goroutine but the link's dials.
//
// The role is released to dial and to wait; a write, with its waits for
// room in the socket's send buffer and for a shared connection's frame
// lock, holds it. In direct mode it guards the queue too: one lock a frame.
type direct struct {
	// The owner's, copied for the hot path.
	link   *link
	q      *queue
	tally  *tally
	closed *atomic.Bool    // set when Close begins
	done   <-chan struct{} // closed when Close begins
	f      framing
	v2     bool          // Config.Acks
	wait   time.Duration // WriteTimeout
	mu     *sync.Mutex   // the link's write role; guards q and the fields below

	frame []byte // a small frame, encoded
	hdr   [maxHeader]byte
	parts [2][]byte // a large frame: hdr and the message
	one   [1][]byte // the held frames

	// The size of q, for Stats, which must not wait for a write.
	heldFrames, heldBytes atomic.Int64
}

func newDirect(l *LogSocket) *direct {
	return &direct{link: l.link, q: l.q, tally: &l.tally, closed: &l.closed, done: l.done, f: l.q.f,
		v2: l.q.f.v2, wait: l.cfg.WriteTimeout, mu: &l.link.role}
}

func (d *direct) send(msg []byte, m meta) error {
	if d.v2 {
		return d.sendV2(msg, m)
	}
	d.mu.Lock()
	// The hot path: a connection, and nothing held before this frame.
	if c := d.link.current(); c != nil && d.q.empty() && !d.closed.Load() && d.link.usable(c) {
		err := d.writeFrame(d.link.ctx, c, msg, time.Time{})
		d.mu.Unlock()
		return err
	}
	defer d.mu.Unlock()
	return d.sendSlow(msg)
}

// sendSlow is send when frames are held, or there is no connection. The
// caller holds mu.
func (d *direct) sendSlow(msg []byte) error {
	if d.closed.Load() {
		return ErrClosed
	}
	// One deadline for all the call's waits: for its dial, which goes on
	// without it if it takes longer, and for room in the send buffer, the
	// held frames' writes and its own. A call returns within WriteTimeout.
	deadline := time.Now().Add(d.wait)
	ctx, cancel := context.WithDeadline(d.link.ctx, deadline)
	defer cancel()
	// The frames held go out first, over a new connection if an attempt is
	// due: no policy may keep the link from reconnecting (issue 11: with
	// DropNewest and a full buffer, it never did).
	d.deliver(ctx, deadline)
	if d.closed.Load() { // Close ran while deliver dialed: it found the queue without msg
		return ErrClosed
	}
	if c := d.link.current(); c != nil && d.q.empty() && d.link.usable(c) {
		return d.writeFrame(ctx, c, msg, deadline)
	}
	defer d.publish()
	if err := d.q.hold(msg, meta{}, deadline, d.waitForRoom); err != nil {
		return err
	}
	d.deliver(ctx, deadline) // the connection lost just now may be due again
	return nil
}

// sendV2 is send with acknowledgements: the frame goes through the queue,
// numbered, and stays there once written, until acknowledged.
func (d *direct) sendV2(msg []byte, m meta) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed.Load() {
		return ErrClosed
	}
	defer d.publish()
	// The common case: up, nothing held, and room.
	if c := d.link.current(); c != nil && d.q.held.empty() && d.link.usable(c) {
		d.q.takeAcks(c)
		d.q.adopt(c)
		if d.q.held.empty() && d.q.roomFor(d.f.size(len(msg))) {
			d.q.hold(msg, m, time.Time{}, nil) // it fits
			if d.writeHeld(c, time.Time{}) == nil {
				return nil
			}
			// Held; the next attempt now, if it is due, as writeFrame does.
			deadline := d.link.deadline()
			ctx, cancel := context.WithDeadline(d.link.ctx, deadline)
			defer cancel()
			d.deliver(ctx, deadline)
			return nil
		}
	}
	deadline := time.Now().Add(d.wait)
	ctx, cancel := context.WithDeadline(d.link.ctx, deadline)
	defer cancel()
	d.deliver(ctx, deadline)
	if d.closed.Load() {
		return ErrClosed
	}
	if err := d.q.hold(msg, m, deadline, d.waitForRoom); err != nil {
		return err
	}
	d.deliver(ctx, deadline)
	return nil
}

// writeHeld writes the held frames on c, until deadline (zero:
// WriteTimeout from when it must wait).
func (d *direct) writeHeld(c *conn, deadline time.Time) error {
	if d.v2 {
		c.acks.upTo.Store(d.q.nextSeq)
	}
	d.one[0] = d.q.held.bytes()
	n, err := d.link.write(c, d.one[:], deadline)
	d.one[0] = nil
	frames, msgBytes, retried := d.q.wrote(n, err)
	d.tally.add(frames, msgBytes, retried, err == nil)
	return err
}

// writeFrame writes msg as one frame on c, waiting for room in the send
// buffer until deadline (zero: WriteTimeout from when it must wait). If
// the write fails, the frame is held whole, to go out first on the next
// connection, which is made at once, within ctx, if an attempt is due.
func (d *direct) writeFrame(ctx context.Context, c *conn, msg []byte, deadline time.Time) error {
	var err error
	written := 0 // of a large frame: how much went out before a failure
	if n := d.f.size(len(msg)); n <= copyMax {
		// Copied behind its header, to go out in one buffer, with send(2).
		if cap(d.frame) < n {
			d.frame = make([]byte, 0, copyMax)
		}
		d.frame = d.frame[:n]
		d.f.put(d.frame, msg, meta{})
		err = d.link.writeOne(c, d.frame, deadline)
	} else {
		// Sent from where it is, with its header, by sendmsg: copying it
		// would cost more than the iovec.
		d.parts = [2][]byte{d.hdr[:d.f.header(d.hdr[:], len(msg), meta{})], msg}
		written, err = d.link.write(c, d.parts[:], deadline)
		d.parts[1] = nil
	}
	if err == nil {
		d.tally.add(1, len(msg), false, true)
		return nil
	}
	// Whatever part of it went out, the stream may be torn: the frame goes
	// again, whole, on a new connection.
	if err := d.q.holdRetry(msg, written, err); err != nil {
		return err
	}
	if deadline.IsZero() {
		deadline = d.link.deadline()
	}
	d.deliver(ctx, deadline)
	d.publish()
	return nil
}

// deliver writes the held frames, connecting if an attempt is due, and
// waiting for room in the send buffer until deadline. The attempt runs in
// the link's goroutine: the call that starts it waits for it, with mu
// released, until deadline or ctx is done, and returns, its frames held, if
// it takes longer; a call that finds another's attempt under way, or the
// link in backoff, does not wait. Close may run while it waits: a caller
// that then adds a frame must check closed first.
func (d *direct) deliver(ctx context.Context, deadline time.Time) {
	for d.q.needsWrite(d.link.current()) {
		c := d.link.current()
		if c == nil {
			if !d.link.startDial() {
				return
			}
			ctx, cancel := context.WithDeadline(ctx, deadline)
			for ctx.Err() == nil {
				dialing, changed := d.link.dialing()
				if !dialing {
					break
				}
				d.waitUnlocked(ctx, changed, nil)
			}
			cancel()
			if d.link.current() == nil {
				return
			}
			continue // the queue may have changed while mu was released
		}
		if !d.link.usable(c) {
			continue
		}
		if d.v2 {
			d.q.takeAcks(c)
			d.q.adopt(c)
			if d.q.held.empty() {
				continue
			}
		}
		err := d.writeHeld(c, deadline)
		d.publish()
		if err != nil {
			return // the next attempt waits for its backoff
		}
	}
}

// waitForRoom is the Block policy's wait: until deadline, mu released
// while it waits, it makes room by delivering the held frames, whenever
// a connection attempt is due.
func (d *direct) waitForRoom(size int, deadline time.Time) error {
	ctx, cancel := context.WithDeadline(d.link.ctx, deadline)
	defer cancel()
	for !d.q.roomFor(size) {
		changed := d.link.changes() // before deliver looks at the link
		d.deliver(ctx, deadline)
		if d.closed.Load() {
			return ErrClosed
		}
		if d.q.roomFor(size) {
			break
		}
		if ctx.Err() != nil {
			return ErrBufferFull
		}
		if !d.awaitAcksUnlocked(ctx) {
			d.waitUnlocked(ctx, changed, d.done)
		}
		if d.closed.Load() {
			return ErrClosed
		}
	}
	return nil
}

// waitUnlocked releases mu until the link changes after changed was taken
// (link.wait), an attempt falls due, frames leave the queue, ctx is done
// or done is closed.
func (d *direct) waitUnlocked(ctx context.Context, changed, done <-chan struct{}) {
	room := d.q.roomFreed()
	d.mu.Unlock()
	d.link.wait(ctx, changed, room, done)
	d.mu.Lock()
}

// awaitAcksUnlocked releases mu while it reads the connection's
// acknowledgements, until one arrives, ctx is done or ackWait has passed,
// and takes them. It reports false, having waited for nothing, if there
// is no acknowledgement to wait for.
func (d *direct) awaitAcksUnlocked(ctx context.Context) bool {
	c := d.link.current()
	if !d.v2 || c == nil || c != d.q.conn || !d.q.unacked() {
		return false
	}
	wait := ackWait
	if deadline, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(deadline))
	}
	d.mu.Unlock()
	d.link.awaitAcks(c, wait)
	d.mu.Lock()
	d.q.takeAcks(c)
	if d.link.current() == c {
		d.link.usable(c) // drops c if the read found it ended
	}
	return true
}

// ackWait bounds one wait for acknowledgements, so that a waiter sees
// ctx and Close in time.
const ackWait = 50 * time.Millisecond

// publish makes the size of the queue visible to Stats: in v2 the frames
// not acknowledged too. The caller holds mu.
func (d *direct) publish() {
	d.heldFrames.Store(int64(d.q.held.frames + d.q.sent.frames))
	d.heldBytes.Store(int64(d.q.held.len() + d.q.sent.len()))
}

func (d *direct) flush(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed.Load() {
		return ErrClosed
	}
	return d.q.takeRefused(d.flushLocked(ctx, d.done))
}

// flushLocked delivers the held frames until none is left, ctx is done,
// or done is closed (Close has begun: its own flush takes over). The
// caller holds mu.
func (d *direct) flushLocked(ctx context.Context, done <-chan struct{}) error {
	defer d.publish()
	defer d.q.sent.shrink()
	for {
		deadline, ok := ctx.Deadline()
		if !ok {
			deadline = time.Now().Add(d.wait)
		}
		changed := d.link.changes() // before deliver looks at the link
		d.deliver(ctx, deadline)
		if d.q.empty() && !d.q.unacked() {
			return nil
		}
		if ctx.Err() != nil {
			return undelivered(d.q.held.frames+d.q.sent.frames, ctx.Err(), d.link.lastError())
		}
		if !d.awaitAcksUnlocked(ctx) {
			d.waitUnlocked(ctx, changed, done)
		}
		select {
		case <-done:
			return ErrClosed
		default:
		}
	}
}

// close delivers what is held until ctx is done, and drops the rest.
func (d *direct) close(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	err := d.flushLocked(ctx, nil)
	d.q.dropAll()
	d.publish()
	return d.q.takeRefused(err)
}

func (d *direct) held() (frames, bytes int) {
	return int(d.heldFrames.Load()), int(d.heldBytes.Load())
}

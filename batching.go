package logsock

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// batchBytes is the size at which a gathering batch is written at once,
// without waiting for FlushDelay: large enough that a write costs little
// per frame, small enough that the next batch gathers while it is in
// flight.
const batchBytes = 256 << 10

// idleRelease is how long the writer waits with nothing to write before it
// gives back the memory of its batches: kept while busy, it saves the
// allocation (and zeroing) of a buffer a batch, which costs more than the
// rest of queueing a frame.
const idleRelease = time.Second

// batcher is the sender of batching mode: Log appends the frame to the
// queue, most often without a lock (queue.tryAppend), and returns; a
// goroutine of the LogSocket, the writer, writes the frames of all callers
// in batches, many in one write, connects as needed and waits out the
// backoff. While a batch is in flight, the next one gathers: group commit.
// New starts the writer; Close stops it, after it has delivered what it
// can within CloseTimeout.
//
// The writer holds the link's write role while it writes a batch; writing
// says so to Flush, which waits for it, under mu.
type batcher struct {
	link   *link
	q      *queue
	tally  *tally
	closed *atomic.Bool    // the LogSocket's: set when Close begins
	done   <-chan struct{} // closed when Close begins
	wait   time.Duration   // WriteTimeout
	delay  time.Duration   // FlushDelay
	v2     bool            // Config.Acks

	wake, urge chan struct{} // a frame is queued; a batch is due now
	quit       chan struct{} // closed by close: the writer delivers what is left, and stops
	stopped    chan struct{} // closed when the writer has stopped
	closeCtx   context.Context

	mu      sync.Mutex    // guards q, except its lock-free append, and the fields below
	writing bool          // the writer has the write role, and mu released
	idle    chan struct{} // if not nil, closed when writing ends
	b       batch         // the writer's: the batch being written
}

func newBatcher(l *LogSocket) *batcher {
	b := &batcher{link: l.link, q: l.q, tally: &l.tally, closed: &l.closed, done: l.done, wait: l.cfg.WriteTimeout, delay: l.cfg.FlushDelay,
		v2:   l.q.f.v2,
		wake: make(chan struct{}, 1), urge: make(chan struct{}, 1), quit: make(chan struct{}), stopped: make(chan struct{})}
	go b.run()
	return b
}

func (b *batcher) send(msg []byte, m meta) error {
	if !b.closed.Load() {
		if first, ok := b.q.tryAppend(msg, m); ok { // the hot path: no lock
			if first {
				signal(b.wake)
			}
			return nil
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return ErrClosed
	}
	if err := b.q.add(msg, m, time.Now().Add(b.wait), b.waitForRoom); err != nil {
		return err
	}
	signal(b.wake)
	if b.q.held.len()+b.q.sealedBytes >= batchBytes {
		signal(b.urge)
	}
	return nil
}

// waitForRoom is the Block policy's wait: the writer makes room; mu is
// released while the call waits.
func (b *batcher) waitForRoom(size int, deadline time.Time) error {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for !b.q.roomFor(size) {
		signal(b.urge)
		room := b.q.roomFreed()
		b.mu.Unlock()
		select {
		case <-room:
		case <-t.C:
		case <-b.done:
		}
		b.mu.Lock()
		if b.closed.Load() {
			return ErrClosed
		}
		if !b.q.roomFor(size) && !time.Now().Before(deadline) {
			return ErrBufferFull
		}
	}
	return nil
}

// signal sends on a channel of capacity 1 without waiting: one pending
// signal is enough.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// run is the writer: it gathers frames for FlushDelay (less if a batch
// fills or Flush asks), then writes until the queue is empty.
func (b *batcher) run() {
	defer close(b.stopped)
	delay := time.NewTimer(time.Hour)
	delay.Stop()
	idle := time.NewTimer(idleRelease)
	defer idle.Stop()
	released := false // and nothing logged since: no timer until something is
	for {
		if b.v2 && b.readAcks() {
			// Frames wait for their acknowledgements, read meanwhile for up
			// to FlushDelay; or the connection that they were written on is
			// gone, and they are to be sent again. New frames then gather
			// as below: writing them as soon as an acknowledgement came
			// made batches a tenth the size (bench, acks section).
			select {
			case <-b.wake:
			case <-b.quit:
				b.closing()
				return
			default:
				if !b.needsWrite() {
					continue
				}
			}
			released = false
		} else {
			var idleC <-chan time.Time
			if !released {
				idle.Reset(idleRelease)
				idleC = idle.C
			}
			select {
			case <-b.wake:
				released = false
			case <-idleC:
				b.release()
				released = true
				continue
			case <-b.quit:
				b.closing()
				return
			}
		}
		delay.Reset(b.delay)
		select {
		case <-delay.C:
		case <-b.urge:
		case <-b.quit:
		}
		delay.Stop()
		for b.writeBatch(b.link.ctx, b.quit) {
		}
	}
}

// writeBatch writes what is queued as one batch, connecting first if need
// be, and reports whether to go on: false once nothing is queued, ctx is
// done or quit is closed. mu is released during the write, so that
// callers keep queueing, and no lock is held while it dials or waits out
// a backoff.
func (b *batcher) writeBatch(ctx context.Context, quit <-chan struct{}) bool {
	select {
	case <-ctx.Done():
		return false
	case <-quit:
		return false
	default:
	}
	b.mu.Lock()
	if !b.needsWriteLocked() {
		b.mu.Unlock()
		return false
	}
	b.writing = true
	b.mu.Unlock()
	b.link.role.Lock()

	c := b.link.current()
	if c != nil && !b.link.usable(c) {
		c = nil
	}
	if c == nil {
		b.link.role.Unlock()
		b.endWrite()
		changed := b.link.changes() // before the attempt: a dial that ends meanwhile ends the wait
		if _, err := b.link.connect(ctx); err != nil {
			b.link.wait(ctx, changed, quit, nil) // the backoff, or another call's dial
		}
		return true
	}
	// Sealed only now, to be written: a chunk sealed while there is no
	// connection would take its whole size of BufferBytes for a few frames.
	// The next caller installs a fresh chunk, most often this one, back
	// from its write: a LogSocket that logs a little at a time keeps one.
	b.mu.Lock()
	if b.v2 {
		b.q.takeAcks(c)
		b.q.adopt(c)
	}
	b.q.take(&b.b)
	if b.v2 {
		c.acks.upTo.Store(b.q.nextSeq)
	}
	b.mu.Unlock()
	n, err := b.link.write(c, b.b.parts, time.Now().Add(b.wait))
	b.mu.Lock()
	frames, msgBytes, retried := b.q.settle(&b.b, n, err)
	b.tally.add(frames, msgBytes, retried, err == nil)
	b.mu.Unlock()
	b.link.role.Unlock()
	b.endWrite()
	return true
}

// endWrite gives up the write role.
func (b *batcher) endWrite() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.writing = false
	if b.idle != nil {
		close(b.idle)
		b.idle = nil
	}
}

// release gives back the memory of the batches and chunks if nothing is
// queued.
func (b *batcher) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.writing || b.q.queued() || b.q.unacked() {
		return
	}
	b.q.release()
	b.q.sent.shrink() // kept while busy: given back at every acknowledgement, it was made again at every batch
	b.b.spare = nil
}

// waitUnlocked releases mu until frames leave the queue, a write ends,
// ctx is done or Close begins.
func (b *batcher) waitUnlocked(ctx context.Context) {
	room := b.q.roomFreed()
	if b.idle == nil {
		b.idle = make(chan struct{})
	}
	idle := b.idle
	b.mu.Unlock()
	select {
	case <-room:
	case <-idle:
	case <-ctx.Done():
	case <-b.done:
	}
	b.mu.Lock()
}

// flush waits until the writer has written everything queued, or ctx is
// done.
func (b *batcher) flush(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.writing || b.q.queued() || b.q.unacked() {
		if b.closed.Load() {
			return ErrClosed
		}
		signal(b.wake)
		signal(b.urge)
		if err := ctx.Err(); err != nil {
			frames, _ := b.q.pending()
			return b.q.takeRefused(undelivered(frames+b.q.sent.frames, err, b.link.lastError()))
		}
		b.waitUnlocked(ctx)
	}
	if b.closed.Load() {
		return ErrClosed
	}
	return b.q.takeRefused(nil)
}

// close stops the writer once it has written what is queued, or ctx is
// done, and drops what is left.
func (b *batcher) close(ctx context.Context) error {
	b.mu.Lock()
	// No lock-free append after this one: a Log that finds the chunk
	// sealed takes mu, and finds the LogSocket closed.
	b.q.sealCurrent()
	b.closeCtx = ctx
	b.mu.Unlock()
	close(b.quit)
	<-b.stopped
	b.mu.Lock()
	defer b.mu.Unlock()
	var err error
	if n := b.q.dropAll(); n > 0 {
		err = undelivered(n, ctx.Err(), b.link.lastError())
	}
	return b.q.takeRefused(err)
}

func (b *batcher) held() (frames, bytes int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	frames, bytes = b.q.pending()
	return frames + b.q.sent.frames, bytes + b.q.sent.len()
}

// needsWrite reports whether frames wait to be written: queued, or (v2)
// written on a connection that is gone.
func (b *batcher) needsWrite() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.needsWriteLocked()
}

func (b *batcher) needsWriteLocked() bool {
	return b.q.queued() || (b.v2 && b.q.needsWrite(b.link.current()))
}

// readAcks is the writer's, in v2, when frames wait for their
// acknowledgement: it reads them for up to FlushDelay (until one comes),
// takes them, and drops the connection if the read found it ended. It
// reports whether there was anything to wait for.
func (b *batcher) readAcks() bool {
	b.mu.Lock()
	unacked := b.q.unacked()
	c := b.q.conn
	b.mu.Unlock()
	if !unacked {
		return false
	}
	if c != nil && c == b.link.current() {
		b.link.awaitAcks(c, b.delay)
		b.mu.Lock()
		b.q.takeAcks(c)
		b.mu.Unlock()
		b.link.role.Lock()
		if b.link.current() == c {
			b.link.usable(c) // drops c if it ended: its frames go again
		}
		b.link.role.Unlock()
	}
	return true
}

// closing is the writer's last work, at Close: it writes what is queued
// and, in v2, waits for the acknowledgements, until Close's deadline.
func (b *batcher) closing() {
	for {
		for b.writeBatch(b.closeCtx, nil) {
		}
		if !b.v2 || b.closeCtx.Err() != nil || !b.readAcks() {
			return
		}
	}
}

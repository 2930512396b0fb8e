package logsock

import (
	"context"
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

// releaseIdle gives back the batch buffers if nothing is queued.
func (l *LogSocket) releaseIdle() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held.empty() && !l.writing {
		l.spare = nil
		l.held.buf, l.held.head = nil, 0
	}
}

// queueLocked is Log and Write in batching mode: the frame joins the queue,
// and the writer is told when there is something to gather or a batch is
// full. The caller holds mu.
func (l *LogSocket) queueLocked(msg []byte) error {
	if l.closed.Load() {
		return ErrClosed
	}
	if l.held.fits(len(msg)) {
		l.held.push(msg)
		l.noteHeld()
	} else if err := l.hold(msg, time.Now().Add(l.cfg.WriteTimeout)); err != nil {
		return err
	}
	// Decided after the push: hold may have waited, and the queue changed.
	if l.held.frames == 1 {
		signal(l.wake)
	}
	if l.held.len() >= batchBytes {
		signal(l.urge)
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

// runWriter is the goroutine of batching mode, started by New and joined
// by Close: it gathers frames for FlushDelay (less if a batch fills or
// Flush asks), then writes until the queue is empty. Frames that arrive
// while a batch is in flight make the next batch, written as soon as the
// write returns: group commit.
func (l *LogSocket) runWriter() {
	defer close(l.writerDone)
	delay := time.NewTimer(time.Hour)
	delay.Stop()
	idle := time.NewTimer(idleRelease)
	defer idle.Stop()
	for {
		idle.Reset(idleRelease)
		select {
		case <-l.wake:
		case <-idle.C:
			l.releaseIdle()
			continue
		case <-l.done:
			return
		}
		delay.Reset(l.cfg.FlushDelay)
		select {
		case <-delay.C:
		case <-l.urge:
		case <-l.done:
		}
		delay.Stop()
		for l.writeBatch() {
		}
	}
}

// writeBatch writes what is queued as one batch, with mu released during
// the write so that callers keep queueing. It reports whether to go on:
// false once the queue is empty or Close has begun (Close writes what is
// left). It connects as needed, and waits out the backoff, without mu.
func (l *LogSocket) writeBatch() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.done:
		return false
	default:
	}
	if l.held.empty() {
		return false
	}
	c := l.live.Load()
	if c != nil && !l.usable(c, time.Now()) {
		c = nil
	}
	if c == nil {
		if l.connectNow(context.Background()) != nil {
			l.wait(context.Background(), true)
		}
		return true
	}
	var hs []byte
	if l.hsDue {
		hs = l.hs[:]
	}
	batch := l.held.take(l.spare)
	l.writing = true
	l.mu.Unlock()
	// Only this goroutine writes in batching mode, and shareLocked waits
	// while writing is set: l.w is this write's alone.
	err := l.writeOn(c, hs, batch.bytes(), false, time.Now().Add(l.cfg.WriteTimeout))
	retry := batch.retry
	frames, msgBytes := batch.consume(l.w.written - len(hs)) // the batch is this goroutine's: no lock
	l.mu.Lock()
	l.writing = false
	l.afterWrite(c, frames, msgBytes, retry, err)
	if err != nil {
		batch.retry = true
	}
	l.spare = l.held.settle(&batch)
	l.noteHeld()
	l.broadcast()
	return true
}

// flushBatches waits until the writer has written everything queued, or
// ctx is done. The caller holds mu.
func (l *LogSocket) flushBatches(ctx context.Context) error {
	for !l.held.empty() || l.writing {
		signal(l.urge)
		if err := ctx.Err(); err != nil {
			return l.undelivered(err)
		}
		l.wait(ctx, false)
		if l.closed.Load() {
			return ErrClosed
		}
	}
	return nil
}

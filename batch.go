package logsock

import (
	"context"
	"errors"
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

// releaseIdle gives back the memory of the batches and chunks if nothing
// is queued.
func (l *LogSocket) releaseIdle() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.held.empty() || l.writing || len(l.sealed) > 0 {
		return
	}
	l.sealCurrent() // kept for reuse if empty; queued if a frame just came
	l.free = nil
	if len(l.sealed) == 0 {
		l.spare = nil
		l.held.buf, l.held.head = nil, 0
	}
}

// queueLocked is Log and Write in batching mode when the current chunk
// cannot take the frame without the lock: the frame goes to a fresh chunk,
// or when none fits, the overflow policy applies. The caller holds mu.
func (l *LogSocket) queueLocked(msg []byte) error {
	deadline := time.Now().Add(l.cfg.WriteTimeout)
	if HeaderLen+len(msg) > l.held.limit { // no wait would make room
		l.dropped.Add(1)
		return ErrBufferFull
	}
	for l.chunkLen > 0 {
		if l.closed.Load() {
			return ErrClosed
		}
		if l.stageLocked(msg) {
			return nil
		}
		if l.cfg.Overflow != Block {
			l.drainStage() // the policies apply frame by frame, in the queue
			break
		}
		n := len(msg)
		if HeaderLen+n <= l.chunkLen {
			n = l.chunkLen - HeaderLen // room for a chunk
		}
		if err := l.waitForRoom(n, deadline); err != nil {
			if !errors.Is(err, ErrClosed) {
				l.dropped.Add(1)
			}
			return err
		}
	}
	if l.closed.Load() {
		return ErrClosed
	}
	if l.held.fits(len(msg)) {
		l.held.push(msg)
	} else if err := l.hold(msg, deadline); err != nil {
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

// writeBatch writes what is queued as one batch: the frames held, then
// the chunks, the current one sealed; mu is released during the write so
// that callers keep queueing. It reports whether to go on: false once
// nothing is queued or Close has begun (Close writes what is left). It
// connects as needed, and waits out the backoff, without mu.
func (l *LogSocket) writeBatch() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.done:
		return false
	default:
	}
	if !l.pending() {
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
	// Sealed only now, to be written: a chunk sealed while there is no
	// connection would take its whole size of BufferBytes for a few frames.
	// The next caller installs a fresh chunk, most often this one, back
	// from its write: a LogSocket that logs a little at a time keeps one.
	if k := l.cur.Load(); k != nil {
		if f, _ := k.pending(); f > 0 {
			l.sealCurrent()
		}
	}
	if l.held.empty() && len(l.sealed) == 0 {
		return false
	}
	var hs []byte
	if l.hsDue {
		hs = l.hs[:]
	}
	batch := l.held.take(l.spare)
	chunks := l.sealed
	l.sealed, l.inflight, l.sealedBytes = l.inflight, nil, 0
	parts := append(l.parts[:0], hs, batch.bytes())
	for _, k := range chunks {
		parts = append(parts, k.buf[:k.used])
	}
	l.writing = true
	l.mu.Unlock()
	// Only this goroutine writes in batching mode, and shareLocked waits
	// while writing is set: l.w is this write's alone. The batch is this
	// goroutine's too: it is read without the lock.
	err := l.writePartsOn(c, parts, time.Now().Add(l.cfg.WriteTimeout))
	retry := batch.retry
	written := l.w.written - len(hs)
	heldLen := batch.len()
	frames, msgBytes := batch.consume(min(written, heldLen))
	written -= heldLen
	for _, k := range chunks {
		if written >= k.used {
			frames += k.frames
			msgBytes += k.used - k.frames*HeaderLen
			written -= k.used
			continue
		}
		// The write failed before the end of this chunk: the frames not
		// written whole go back to the queue, before those queued since.
		f, b, cut := wholeFrames(l.cfg.Order, k.buf[:k.used], max(written, 0))
		frames += f
		msgBytes += b
		batch.pushFrames(k.buf[cut:k.used], k.frames-f)
		written = 0
	}
	clear(parts)
	l.mu.Lock()
	l.parts = parts[:0]
	for i, k := range chunks {
		l.recycle(k)
		chunks[i] = nil
	}
	l.inflight = chunks[:0]
	l.writing = false
	l.afterWrite(c, frames, msgBytes, retry, err)
	if err != nil {
		batch.retry = true
	}
	l.spare = l.held.settle(&batch)
	l.broadcast()
	return true
}

// pending reports whether frames are queued, or a batch is being
// written. The caller holds mu.
func (l *LogSocket) pending() bool {
	if !l.held.empty() || l.writing || len(l.sealed) > 0 {
		return true
	}
	k := l.cur.Load()
	if k == nil {
		return false
	}
	f, _ := k.pending()
	return f > 0
}

// flushBatches waits until the writer has written everything queued, or
// ctx is done. The caller holds mu.
func (l *LogSocket) flushBatches(ctx context.Context) error {
	for l.pending() {
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

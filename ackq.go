package logsock

import "fmt"

// The queue's part of protocol v2: numbering the frames, keeping those
// written until the collector acknowledges them, and sending them again,
// with their numbers, on the next connection. The owner's lock guards all
// of it, as the rest of the queue.

// number gives the next frame its number.
func (q *queue) number() uint64 {
	q.nextSeq++
	q.last.Store(q.nextSeq)
	return q.nextSeq
}

// numberFrames numbers the whole frames of b, a sealed chunk's, in order,
// and returns the first number and the last.
func (q *queue) numberFrames(b []byte) (first, last uint64) {
	first, last = q.nextSeq+1, q.nextSeq
	for off := 0; off < len(b); {
		last++
		q.f.number(b[off:], last)
		n, _ := q.f.frame(b[off:])
		off += n
	}
	q.nextSeq = last
	q.last.Store(last) // once a chunk, not an atomic store a frame
	return first, last
}

// toSent keeps b, frames whole frames just written on q.conn, until they
// are acknowledged.
func (q *queue) toSent(b []byte, frames int) {
	if frames == 0 {
		return
	}
	prev := q.sentLast
	if q.sent.empty() {
		prev = q.acked
	}
	for off := 0; off < len(b); {
		prev = expandSeq(prev, q.f.seqLow(b[off:]))
		if off == 0 && q.sent.empty() {
			q.sentFirst = prev
		}
		n, _ := q.f.frame(b[off:])
		off += n
	}
	q.sentLast = prev
	q.sent.pushFrames(b, frames)
}

// toSentRun is toSent for the frames of a whole chunk, whose first and
// last numbers are known: it need not read them.
func (q *queue) toSentRun(b []byte, frames int, first, last uint64) {
	if frames == 0 {
		return
	}
	if q.sent.empty() {
		q.sentFirst = first
	}
	q.sentLast = last
	q.sent.pushFrames(b, frames)
}

// dropSent drops the oldest frame written and not acknowledged, for room
// (DropOldest): counted as dropped, whether or not it arrived.
func (q *queue) dropSent() {
	q.sent.dropOldest()
	q.dropped.Add(1)
	q.nextSent()
}

// nextSent follows sentFirst to sent's new first frame.
func (q *queue) nextSent() {
	if !q.sent.empty() {
		q.sentFirst = expandSeq(q.sentFirst, q.f.seqLow(q.sent.bytes()))
	}
}

// takeAcks applies what the collector of c has acknowledged and refused
// since the last call: the frames leave sent, counted.
func (q *queue) takeAcks(c *conn) {
	a := c.acks
	if a == nil {
		return
	}
	if a.anyRefused.Load() {
		for _, r := range a.takeRefused() {
			q.releaseAcked(r.seq-1, 0)
			q.releaseAcked(r.seq, r.why)
		}
	}
	if n := a.acked.Load(); n > q.acked {
		q.releaseAcked(n, 0)
	}
}

// releaseAcked lets go of the frames in sent numbered n or less, as
// acknowledged; if why is not 0, frame n is one the collector refused.
func (q *queue) releaseAcked(n uint64, why uint8) {
	freed := false
	acked := uint64(0) // counted once, after the loop, rather than an atomic add a frame
	if !q.sent.empty() && n >= q.sentLast && why == 0 {
		// All of them, the common case: without reading each.
		acked = uint64(q.sent.frames)
		q.sent.drop()
		freed = true
	}
	for !q.sent.empty() && q.sentFirst <= n {
		seq := q.sentFirst
		size, _ := q.f.frame(q.sent.bytes())
		q.sent.remove(size)
		q.nextSent()
		freed = true
		if seq == n && why != 0 {
			q.dropped.Add(1)
			q.refused = fmt.Errorf("%w: the collector refused frame %d (%d bytes): %s", ErrFrameTooLarge, seq, size, refusalReason(why))
			continue
		}
		acked++
	}
	q.ackCount.Add(acked)
	if n > q.acked {
		q.acked = n
		q.floor.Store(n + 1)
	}
	if freed {
		q.freed()
	}
}

func refusalReason(why uint8) string {
	if why == refusedTooLarge {
		return "too large"
	}
	return "refused by its handler"
}

// adopt makes c, up and about to be written on, the queue's connection.
// On a new one the frames written on the last and not acknowledged go
// first, again; those the collector's hello says it has leave, as
// acknowledged; and those above its MaxFrame are dropped, counted, and
// reported, since it would end the connection on each.
func (q *queue) adopt(c *conn) {
	if q.conn == c {
		return
	}
	if q.conn != nil {
		// What the last connection's collector acknowledged, read after
		// the queue last looked (its goodbye's wait, a read that found the
		// end): those frames are not sent again.
		q.takeAcks(q.conn)
	}
	q.conn = c
	a := c.acks
	if a == nil {
		return
	}
	if !q.sent.empty() {
		q.resent.Add(uint64(q.sent.frames))
		q.held.prepend(&q.sent)
		q.sent.reset()
	}
	// The collector's hello acknowledges, as an 'A' would, frames that are
	// now held.
	for seq := q.acked; !q.held.empty(); {
		seq = expandSeq(seq, q.f.seqLow(q.held.bytes()))
		if seq > a.helloAcked {
			break
		}
		q.held.dropOldest()
		q.ackCount.Add(1)
	}
	if a.helloAcked > q.acked {
		q.acked = a.helloAcked
		q.floor.Store(q.acked + 1)
	}
	if limit := int64(a.maxFrame); limit < q.maxFrame.Load() {
		q.maxFrame.Store(limit)
		q.drainChunks()
		if n := q.held.dropAbove(int(limit)); n > 0 {
			q.dropped.Add(uint64(n))
			q.refused = fmt.Errorf("%w: %d frames above the collector's limit of %d bytes dropped", ErrFrameTooLarge, n, limit)
		}
	}
	q.freed()
}

// unacked reports whether frames written wait for their acknowledgement.
func (q *queue) unacked() bool { return !q.sent.empty() }

// needsWrite reports whether there are frames to write while c is the
// link's connection (nil: none): held ones, or ones written on a
// connection that is gone.
func (q *queue) needsWrite(c *conn) bool {
	return !q.held.empty() || (!q.sent.empty() && q.conn != c)
}

// prepend puts the frames of p before q's.
func (q *frameQueue) prepend(p *frameQueue) {
	if p.empty() {
		return
	}
	b := make([]byte, 0, p.len()+q.len())
	b = append(append(b, p.bytes()...), q.bytes()...)
	q.buf, q.head = b, 0
	q.frames += p.frames
	q.retry, q.cuts = true, 0
}

// dropAbove removes the frames whose messages are longer than limit, and
// returns how many.
func (q *frameQueue) dropAbove(limit int) int {
	dropped := 0
	b := q.bytes()
	out := b[:0]
	for off := 0; off < len(b); {
		n, m := q.f.frame(b[off:])
		if m > limit {
			dropped++
		} else {
			out = append(out, b[off:off+n]...) // copy within b, forward: out never passes off
		}
		off += n
	}
	if dropped > 0 {
		q.buf = q.buf[:q.head+len(out)]
		q.frames -= dropped
	}
	return dropped
}

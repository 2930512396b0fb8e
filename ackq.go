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
// are acknowledged: copied, since b's memory is the caller's.
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
	q.sent.copyIn(b, frames, prev)
}

// toSentChunk keeps the frames of k, a chunk just written whole on
// q.conn, until they are acknowledged; their numbers are known. A chunk
// at least half full stays as it is, its memory out of use until its last
// frame is acknowledged, and no longer counted among the chunks (outside)
// but as its frames' bytes; a sparser one is copied, and returns at once:
// the memory that sent's frames keep from reuse is at most twice their
// bytes.
func (q *queue) toSentChunk(k *chunk) {
	if k.frames == 0 {
		q.recycle(k)
		return
	}
	if q.sent.empty() {
		q.sentFirst = k.first
	}
	q.sentLast = k.last
	if 2*k.used < len(k.buf) {
		q.sent.copyIn(k.buf[:k.used], k.frames, k.last)
		q.recycle(k)
		return
	}
	q.outside -= len(k.buf)
	q.sent.add(sentRun{b: k.buf[:k.used], frames: k.frames, last: k.last, k: k})
}

// dropSent drops the oldest frame written and not acknowledged, for room
// (DropOldest): counted as dropped, whether or not it arrived.
func (q *queue) dropSent() {
	q.removeSent()
	q.dropped.Add(1)
}

// removeSent removes sent's first frame, follows sentFirst to the next,
// and returns the frame's size.
func (q *queue) removeSent() int {
	s := &q.sent
	r := s.first()
	n, _ := q.f.frame(r.b[r.head:])
	r.head += n
	r.frames--
	s.frames--
	s.live -= n
	if r.frames == 0 {
		q.popSent()
	} else {
		q.sentFirst = expandSeq(q.sentFirst, q.f.seqLow(r.b[r.head:]))
	}
	return n
}

// popSent removes sent's first run, whose frames have left, and follows
// sentFirst to the next run's first frame.
func (q *queue) popSent() {
	r := q.sent.pop()
	q.freeRun(r)
	if q.sent.hasRuns() {
		next := q.sent.first()
		q.sentFirst = expandSeq(r.last, q.f.seqLow(next.b[next.head:]))
	}
}

// freeRun returns the memory of a run that has left sent: a chunk for
// reuse, a block to sent's spares.
func (q *queue) freeRun(r sentRun) {
	if r.k != nil {
		q.keep(r.k) // its bytes left outside when it entered sent
		return
	}
	if cap(r.b) == sentBlock && len(q.sent.spare) < sentSpares {
		q.sent.spare = append(q.sent.spare, r.b[:0])
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
// A run acknowledged whole leaves without reading its frames.
func (q *queue) releaseAcked(n uint64, why uint8) {
	freed := false
	acked := 0 // counted once, after the loop, rather than an atomic add a frame
	for !q.sent.empty() && q.sentFirst <= n {
		if r := q.sent.first(); r.last < n || r.last == n && why == 0 {
			acked += r.frames
			q.popSent()
			freed = true
			continue
		}
		seq := q.sentFirst
		size := q.removeSent()
		freed = true
		if seq == n && why != 0 {
			q.dropped.Add(1)
			q.refused = fmt.Errorf("%w: the collector refused frame %d (%d bytes): %s", ErrFrameTooLarge, seq, size, refusalReason(why))
			continue
		}
		acked++
	}
	q.ackCount.Add(uint64(acked))
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
		q.held.prepend(q.sent.bytes(), q.sent.frames)
		q.dropAllSent()
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

// prepend puts frames, whole frames in p, before q's.
func (q *frameQueue) prepend(p []byte, frames int) {
	if frames == 0 {
		return
	}
	b := make([]byte, 0, len(p)+q.len())
	b = append(append(b, p...), q.bytes()...)
	q.buf, q.head = b, 0
	q.frames += frames
	q.retry, q.cuts = true, 0
}

// dropAllSent lets go of every frame in sent, and returns their memory.
func (q *queue) dropAllSent() {
	for q.sent.hasRuns() {
		q.freeRun(q.sent.pop())
	}
}

// The memory of sent's copies: blocks of sentBlock bytes (or a frame's
// own, if larger), sentSpares of them kept for reuse.
const (
	sentBlock  = 64 << 10
	sentSpares = 4
)

// sentQueue holds the frames written and not acknowledged, oldest first,
// as runs: batching mode's chunks, as they were written, and blocks of
// copies. Acknowledgements free the oldest without moving the others.
type sentQueue struct {
	runs   []sentRun // runs[head:] hold the frames, the oldest at runs[head]'s head
	head   int
	frames int
	live   int      // the frames' bytes
	spare  [][]byte // blocks for reuse
}

// A sentRun is frames written one after the other.
type sentRun struct {
	b      []byte // b[head:] are the run's frames
	head   int
	frames int
	last   uint64 // the number of the run's last frame
	k      *chunk // the chunk whose memory b is; nil: a block of copies
}

func (s *sentQueue) empty() bool       { return s.frames == 0 }
func (s *sentQueue) len() int          { return s.live }
func (s *sentQueue) first() *sentRun   { return &s.runs[s.head] }
func (s *sentQueue) hasRuns() bool     { return s.head < len(s.runs) }
func (s *sentQueue) lastRun() *sentRun { return &s.runs[len(s.runs)-1] }

// add appends a run.
func (s *sentQueue) add(r sentRun) {
	if len(s.runs) == cap(s.runs) && s.head > 0 {
		s.runs = s.runs[:copy(s.runs, s.runs[s.head:])]
		clear(s.runs[len(s.runs):cap(s.runs)])
		s.head = 0
	}
	s.runs = append(s.runs, r)
	s.frames += r.frames
	s.live += len(r.b) - r.head
}

// pop removes the first run, with the frames it still holds, and returns
// it.
func (s *sentQueue) pop() sentRun {
	r := s.runs[s.head]
	s.frames -= r.frames
	s.live -= len(r.b) - r.head
	s.runs[s.head] = sentRun{}
	s.head++
	if s.head == len(s.runs) {
		s.runs, s.head = s.runs[:0], 0
	}
	return r
}

// copyIn appends a copy of b, frames whole frames, the last numbered
// last: to the last block if it has room, else to a new one.
func (s *sentQueue) copyIn(b []byte, frames int, last uint64) {
	if s.hasRuns() {
		if r := s.lastRun(); r.k == nil && len(r.b)+len(b) <= cap(r.b) {
			r.b = append(r.b, b...)
			r.frames += frames
			r.last = last
			s.frames += frames
			s.live += len(b)
			return
		}
	}
	var blk []byte
	if n := len(s.spare); n > 0 && len(b) <= sentBlock {
		blk, s.spare[n-1] = s.spare[n-1], nil
		s.spare = s.spare[:n-1]
	} else {
		blk = make([]byte, 0, max(sentBlock, len(b)))
	}
	s.add(sentRun{b: append(blk, b...), frames: frames, last: last})
}

// bytes returns a copy of every frame, in order.
func (s *sentQueue) bytes() []byte {
	b := make([]byte, 0, s.live)
	for _, r := range s.runs[s.head:] {
		b = append(b, r.b[r.head:]...)
	}
	return b
}

// shrink gives back the spare blocks, once sent is empty.
func (s *sentQueue) shrink() {
	if s.empty() {
		s.spare, s.runs, s.head = nil, nil, 0
	}
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

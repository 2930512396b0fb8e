package logsock

// frameQueue holds whole encoded frames (header and message) in order, in
// one contiguous run of bytes, so that they go out in as few writes as the
// kernel allows. The queue (queue.go) keeps its frames in one, and bounds
// it.
type frameQueue struct {
	f      framing
	buf    []byte // buf[head:] holds the frames
	head   int
	frames int  // frames held
	retry  bool // the first frame has been tried on a connection that failed
	cuts   int  // connections in a row that the collector ended inside the first frame

	// most is the queue's limit: the most bytes of frames it holds. Its
	// buffer may take a quarter more (grow).
	most int
	// least is the least memory it takes when it needs some: in batching
	// mode without chunks (a small BufferBytes) a batch's worth, so that
	// it does not grow from 4 KiB by doubling, copying as it goes.
	least int
}

func (q *frameQueue) len() int      { return len(q.buf) - q.head }
func (q *frameQueue) empty() bool   { return q.frames == 0 }
func (q *frameQueue) bytes() []byte { return q.buf[q.head:] }

// push adds msg as a frame; the caller has checked that it fits. The
// buffer grows as frames arrive, never more than a quarter past most.
func (q *frameQueue) push(msg []byte) {
	n := q.f.size(len(msg))
	q.grow(n)
	q.buf = q.buf[:len(q.buf)+n]
	q.f.put(q.buf[len(q.buf)-n:], msg)
	q.frames++
}

// pushFrames adds b, which holds that many whole encoded frames.
func (q *frameQueue) pushFrames(b []byte, frames int) {
	q.grow(len(b))
	q.buf = append(q.buf, b...)
	q.frames += frames
}

// grow makes room in buf for need more bytes. It moves the frames down
// over the space of those already gone only when that space is at least
// half the buffer, or the buffer may not grow: the buffer may grow a
// quarter past most, so that a queue kept full (DropOldest: a frame in,
// the oldest out) moves its frames once for every quarter of a buffer
// dropped, not at every frame (issue 13's review: 400 µs a Log with a
// 4 MiB buffer).
func (q *frameQueue) grow(need int) {
	if len(q.buf)+need <= cap(q.buf) {
		return
	}
	limit := q.most + q.most/4
	live := len(q.buf) - q.head
	if live+need <= cap(q.buf) && (q.head >= cap(q.buf)/2 || cap(q.buf) >= limit) {
		q.buf = q.buf[:copy(q.buf, q.buf[q.head:])]
		q.head = 0
		return
	}
	size := min(max(2*cap(q.buf), live+need, q.least, 4096), max(limit, live+need))
	nb := make([]byte, live, size)
	copy(nb, q.buf[q.head:])
	q.buf, q.head = nb, 0
}

// dropOldest removes the first frame.
func (q *frameQueue) dropOldest() {
	n, _ := q.f.frame(q.buf[q.head:])
	q.remove(n)
	q.retry, q.cuts = false, 0
}

// consume removes the frames that lie whole within the first written
// bytes, and returns how many, and their message bytes. A frame written in
// part stays, whole, to be sent again from its start.
func (q *frameQueue) consume(written int) (frames, msgBytes int) {
	for q.frames > 0 {
		n, m := q.f.frame(q.buf[q.head:])
		if n > written {
			break
		}
		written -= n
		q.remove(n)
		frames++
		msgBytes += m
	}
	if frames > 0 {
		q.retry, q.cuts = false, 0
	}
	return frames, msgBytes
}

func (q *frameQueue) remove(n int) {
	q.head += n
	q.frames--
	if q.head == len(q.buf) {
		q.head = 0
		q.buf = q.buf[:0]
	}
}

// shrink gives back the memory of a queue that an outage grew, once it is
// empty again.
func (q *frameQueue) shrink() {
	if q.empty() && cap(q.buf) > 1<<20 {
		q.buf, q.head = nil, 0
	}
}

// reset empties the queue and returns its memory.
func (q *frameQueue) reset() {
	q.buf, q.head, q.frames, q.retry, q.cuts = nil, 0, 0, false, 0
}

// take moves every frame out into a batch to be written, and starts the
// queue afresh on spare's memory.
func (q *frameQueue) take(spare []byte) frameQueue {
	b := *q
	q.buf, q.head, q.frames, q.retry, q.cuts = spare[:0], 0, 0, false, 0
	return b
}

// settle ends a batch after its write: the frames it still holds (the
// write failed) go back to the front of the queue, before those that
// arrived meanwhile. It returns the batch's memory, for the next take.
func (q *frameQueue) settle(b *frameQueue) (spare []byte) {
	if b.empty() {
		return b.buf[:0]
	}
	rest := make([]byte, 0, b.len()+q.len())
	rest = append(append(rest, b.bytes()...), q.bytes()...)
	q.buf, q.head = rest, 0
	q.frames += b.frames
	q.retry, q.cuts = b.retry, b.cuts
	return nil
}

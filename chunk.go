package logsock

import (
	"errors"
	"runtime"
	"sync/atomic"
	"time"
)

// In batching mode, Log appends its frame to a chunk of memory without
// taking a lock: it reserves room with one compare-and-swap on the chunk's
// state word, copies the frame in, and marks the copy done with one atomic
// add. Callers on different cores copy at the same time, and none waits
// for another, or for the writer, as a mutex would make them (issue 5).
// The queue decides which chunk is current (below), seals chunks, and
// counts them against BufferBytes.

// chunkMax is the size of a chunk, if BufferBytes leaves room for
// chunksMin of them; chunkLeast is the least that is worth one.
const (
	chunkMax   = 64 << 10
	chunksMin  = 4
	chunkLeast = 4 << 10
)

// The state word of a chunk: the bytes reserved, the frames reserved, the
// appends still copying, and whether it is sealed.
const (
	offMask     = 1<<24 - 1 // bytes reserved: chunks are at most 64 KiB
	frameShift  = 24
	frameMask   = (1<<20 - 1) << frameShift // frames reserved: at most 16 Ki in 64 KiB
	oneFrame    = 1 << frameShift
	writerShift = 44
	writerMask  = (1<<19 - 1) << writerShift // appends copying: one a running or preempted caller
	oneWriter   = 1 << writerShift
	sealedBit   = 1 << 63
)

// A chunk is memory that frames are appended to without a lock, until it
// is sealed.
type chunk struct {
	state atomic.Uint64
	buf   []byte

	// Set by seal (or, for a large frame's own chunk, when it is made),
	// read by the writer (under mu, or once the chunk is in its batch).
	used, frames int
	first, last  uint64 // v2: the numbers of its first and last frames
}

// tryAppend appends msg as a frame, unless the chunk is sealed or has no
// room. first reports that it is the chunk's first frame: the writer is
// to be woken.
func (k *chunk) tryAppend(f framing, msg []byte, m meta) (first, ok bool) {
	n := uint64(f.size(len(msg)))
	for {
		st := k.state.Load()
		off := st & offMask
		if st&sealedBit != 0 || off+n > uint64(len(k.buf)) {
			return false, false
		}
		if k.state.CompareAndSwap(st, st+n+oneFrame+oneWriter) {
			f.put(k.buf[off:off+n], msg, m)     // v2: numbered when sealed
			k.state.Add(^uint64(oneWriter - 1)) // done copying
			return off == 0, true
		}
	}
}

// seal closes the chunk to appends, waits for those copying to finish,
// and notes what it holds. The caller holds mu.
func (k *chunk) seal() {
	st := k.state.Or(sealedBit) | sealedBit
	for st&writerMask != 0 { // a copy of at most 64 KiB, or a caller preempted in it
		runtime.Gosched()
		st = k.state.Load()
	}
	k.used, k.frames = int(st&offMask), int(st&frameMask>>frameShift)
}

// pending reports the frames and bytes appended so far.
func (k *chunk) pending() (frames, bytes int) {
	st := k.state.Load()
	return int(st & frameMask >> frameShift), int(st & offMask)
}

// chunkSize is the size of the chunks for a buffer of limit bytes; 0 means
// none: frames go to the queue under the lock.
func chunkSize(limit int) int {
	size := min(chunkMax, limit/chunksMin)
	if size < chunkLeast {
		return 0
	}
	return size
}

// wholeFrames counts the frames of b that lie whole within its first
// written bytes, and their message bytes; cut is where the first frame
// not written whole starts.
func wholeFrames(f framing, b []byte, written int) (frames, msgBytes, cut int) {
	for cut < len(b) {
		n, m := f.frame(b[cut:])
		if cut+n > written {
			break
		}
		cut += n
		frames++
		msgBytes += m
	}
	return frames, msgBytes, cut
}

// The queue's chunks: batching mode's.

// add is hold for batching mode: msg goes to a chunk, the current one or
// a fresh one, while they fit; Block waits for a chunk's room. The other
// policies act on held, frame by frame, as without chunks: the chunks'
// frames move there first.
func (q *queue) add(msg []byte, m meta, deadline time.Time, wait waitFunc) error {
	size := q.f.size(len(msg))
	if size > q.limit {
		q.dropped.Add(1)
		return ErrBufferFull
	}
	for q.chunkLen > 0 {
		if q.stage(msg, m) {
			return nil
		}
		if q.policy != Block {
			q.drainChunks()
			break
		}
		if err := wait(max(size, q.chunkLen), deadline); err != nil { // room for a chunk, or the frame's own
			if !errors.Is(err, ErrClosed) {
				q.dropped.Add(1)
			}
			return err
		}
	}
	return q.hold(msg, m, deadline, wait)
}

// tryAppend appends msg to the current chunk without the lock, if there is
// one with room; first reports that it is the chunk's first frame.
func (q *queue) tryAppend(msg []byte, m meta) (first, ok bool) {
	k := q.cur.Load()
	if k == nil {
		return false, false
	}
	return k.tryAppend(q.f, msg, m)
}

// queued reports whether frames wait to be written: held, sealed, or in
// the current chunk.
func (q *queue) queued() bool {
	if !q.held.empty() || len(q.sealed) > 0 {
		return true
	}
	k := q.cur.Load()
	if k == nil {
		return false
	}
	f, _ := k.pending()
	return f > 0
}

// stage appends msg to a chunk: the current one, a fresh one, or one of
// its own if it is larger than a chunk. It reports false if the chunks in
// use leave no room.
func (q *queue) stage(msg []byte, m meta) bool {
	for {
		if _, ok := q.tryAppend(msg, m); ok {
			return true
		}
		q.sealCurrent()
		n := q.f.size(len(msg))
		if n > q.chunkLen {
			if !q.roomFor(n) {
				return false
			}
			k := &chunk{buf: make([]byte, n), used: n, frames: 1}
			k.state.Store(sealedBit)
			if q.f.v2 {
				m.seq = q.number()
				k.first, k.last = m.seq, m.seq
			}
			q.f.put(k.buf, msg, m)
			q.outside += n
			q.queueChunk(k)
			return true
		}
		if !q.installChunk() {
			return false
		}
	}
}

// sealCurrent seals the current chunk and queues it for the writer, or
// keeps it for reuse if it is empty.
func (q *queue) sealCurrent() {
	k := q.cur.Swap(nil)
	if k == nil {
		return
	}
	k.seal()
	if k.used == 0 {
		q.recycle(k)
		return
	}
	if q.f.v2 {
		k.first, k.last = q.numberFrames(k.buf[:k.used])
	}
	q.queueChunk(k)
}

// queueChunk adds a sealed chunk to those to write.
func (q *queue) queueChunk(k *chunk) {
	q.sealed = append(q.sealed, k)
	q.sealedBytes += k.used
}

// installChunk makes a fresh chunk current, if one fits.
func (q *queue) installChunk() bool {
	if !q.roomFor(q.chunkLen) {
		return false
	}
	var k *chunk
	if n := len(q.free); n > 0 {
		k, q.free[n-1] = q.free[n-1], nil
		q.free = q.free[:n-1]
		// A caller that loaded this chunk before it was sealed may append
		// once it is current again: that is an append to the current
		// chunk, in order. It cannot append while the chunk is free,
		// sealed.
		k.state.Store(0)
	} else {
		k = &chunk{buf: make([]byte, q.chunkLen)}
	}
	q.outside += len(k.buf)
	q.cur.Store(k)
	return true
}

// recycle ends the use of a sealed chunk: its room returns, and its memory
// is kept for the next, unless it was a large frame's own.
func (q *queue) recycle(k *chunk) {
	q.outside -= len(k.buf)
	q.keep(k)
}

// keep keeps a chunk that is out of use for the next, unless it was a
// large frame's own.
func (q *queue) keep(k *chunk) {
	if len(k.buf) == q.chunkLen {
		q.free = append(q.free, k)
	}
}

// drainChunks moves the frames of the chunks into held, after those there:
// held then holds every frame queued, in order.
func (q *queue) drainChunks() {
	q.sealCurrent()
	for i, k := range q.sealed {
		q.held.pushFrames(k.buf[:k.used], k.frames)
		q.recycle(k)
		q.sealed[i] = nil
	}
	q.sealed, q.sealedBytes = q.sealed[:0], 0
}

// release gives back the memory kept for reuse, when nothing is queued.
func (q *queue) release() {
	q.sealCurrent() // kept for reuse if empty; queued if a frame just came
	q.free = nil
	if len(q.sealed) == 0 && q.held.empty() && q.reserved == 0 {
		q.held.reset()
	}
}

// A batch is what batching mode's writer takes from the queue for one
// write: the frames held, then the sealed chunks.
type batch struct {
	held   frameQueue
	chunks []*chunk
	parts  [][]byte // held's bytes, then each chunk's
	spare  []byte   // the memory of the last batch's held frames, for the next
}

// take seals the current chunk and moves every frame queued into b. Its
// bytes count against BufferBytes until settle.
func (q *queue) take(b *batch) {
	if k := q.cur.Load(); k != nil {
		if f, _ := k.pending(); f > 0 {
			q.sealCurrent()
		}
	}
	b.held = q.held.take(b.spare)
	b.spare = nil
	q.reserved = b.held.len()
	b.chunks, q.sealed, q.sealedBytes = q.sealed, b.chunks[:0], 0
	b.parts = append(b.parts[:0], b.held.bytes())
	for _, k := range b.chunks {
		b.parts = append(b.parts, k.buf[:k.used])
	}
}

// settle ends the write of b, of which n bytes went out, and that failed
// with err, or did not: the frames written whole leave; the others go back,
// whole and in order, to the front of the queue. It returns the frames
// written whole, their message bytes, and whether the first had been tried
// before.
func (q *queue) settle(b *batch, n int, err error) (frames, msgBytes int, retried bool) {
	retried = b.held.retry
	heldLen := b.held.len()
	if q.f.v2 {
		f, _, cut := wholeFrames(q.f, b.held.bytes(), min(n, heldLen))
		q.toSent(b.held.bytes()[:cut], f)
	}
	frames, msgBytes = b.held.consume(min(n, heldLen))
	partial := n - (heldLen - b.held.len()) // bytes of the first frame left, if it was cut
	n -= heldLen
	for i, k := range b.chunks {
		kept := false // by sent, which returns it once acknowledged
		if n >= k.used && !q.f.octets {
			if q.f.v2 {
				q.toSentChunk(k)
				kept = true
			}
			frames += k.frames
			msgBytes += k.used - k.frames*q.f.headerLen(0)
			n -= k.used
			partial -= k.used
		} else {
			// Octet counts vary in size: the message bytes are counted frame
			// by frame. And if the write failed before the end of this
			// chunk, the frames not written whole go back, before those
			// queued since.
			f, mb, cut := wholeFrames(q.f, k.buf[:k.used], max(n, 0))
			if q.f.v2 {
				q.toSent(k.buf[:cut], f)
			}
			frames += f
			msgBytes += mb
			b.held.pushFrames(k.buf[cut:k.used], k.frames-f) // none if it went out whole
			if n > 0 {
				partial -= min(cut, n)
			}
			n = max(n-k.used, 0)
		}
		if !kept {
			q.recycle(k)
		}
		b.chunks[i] = nil
	}
	b.chunks = b.chunks[:0]
	clear(b.parts)
	if !b.held.empty() {
		b.held.retry = true // the first frame left was cut, or never went out
	}
	q.reserved = 0
	b.spare = q.held.settle(&b.held)
	if err != nil {
		q.cut(partial, err)
	}
	q.freed()
	return frames, msgBytes, retried
}

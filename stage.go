package logsock

import (
	"runtime"
	"sync/atomic"
)

// In batching mode, Log appends its frame to a chunk of memory without
// taking the LogSocket's lock: it reserves room with one compare-and-swap
// on the chunk's state word, copies the frame in, and marks the copy done
// with one atomic add. Callers on different cores copy at the same time,
// and none waits for another, or for the writer, as a mutex would make
// them (issue 5: eight goroutines must batch no slower than one).
//
// The lock (mu) is taken only to change chunks: when the current one is
// full, a caller seals it, queues it for the writer, and installs a fresh
// one; the writer seals the current chunk when it gathers a batch. A
// sealed chunk takes no more frames; sealing waits for the copies under
// way to finish, so that a sealed chunk holds whole frames only. Chunks
// are written in the order they were sealed, each after the frames held
// in the queue (l.held), so every goroutine's frames stay in order; then
// they are kept for reuse, so that a busy LogSocket allocates nothing.
//
// The chunks in use count against Config.BufferBytes, whole. When no
// chunk fits, Block waits for the writer to free one; DropOldest and
// DropNewest move the frames of the chunks into the queue and apply there,
// frame by frame, as without chunks.

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
}

// tryAppend appends msg as a frame, unless the chunk is sealed or has no
// room. first reports that it is the chunk's first frame: the writer is
// to be woken.
func (k *chunk) tryAppend(order ByteOrder, msg []byte) (first, ok bool) {
	n := uint64(HeaderLen + len(msg))
	for {
		st := k.state.Load()
		off := st & offMask
		if st&sealedBit != 0 || off+n > uint64(len(k.buf)) {
			return false, false
		}
		if k.state.CompareAndSwap(st, st+n+oneFrame+oneWriter) {
			b := k.buf[off : off+n]
			PutFrameHeader(b, order, len(msg))
			copy(b[HeaderLen:], msg)
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

// tryStage appends msg to the current chunk without the lock, if there is
// one with room.
func (l *LogSocket) tryStage(msg []byte) bool {
	k := l.cur.Load()
	if k == nil {
		return false
	}
	first, ok := k.tryAppend(l.cfg.Order, msg)
	if first {
		signal(l.wake)
	}
	return ok
}

// stageLocked appends msg to a chunk: the current one, a fresh one, or one
// of its own if it is larger than a chunk. It reports false if the chunks
// in use leave no room: the overflow policy is then the caller's. The
// caller holds mu.
func (l *LogSocket) stageLocked(msg []byte) bool {
	for {
		if l.tryStage(msg) {
			return true
		}
		l.sealCurrent()
		n := HeaderLen + len(msg)
		if n > l.chunkLen {
			if !l.held.fits(len(msg)) {
				return false
			}
			k := &chunk{buf: make([]byte, n), used: n, frames: 1}
			k.state.Store(sealedBit)
			PutFrameHeader(k.buf, l.cfg.Order, len(msg))
			copy(k.buf[HeaderLen:], msg)
			l.held.outside += n
			l.queueChunk(k)
			signal(l.wake)
			return true
		}
		if !l.installChunk() {
			return false
		}
	}
}

// sealCurrent seals the current chunk and queues it for the writer, or
// keeps it for reuse if it is empty. The caller holds mu.
func (l *LogSocket) sealCurrent() {
	k := l.cur.Swap(nil)
	if k == nil {
		return
	}
	k.seal()
	if k.used == 0 {
		l.recycle(k)
		return
	}
	l.queueChunk(k)
}

// queueChunk adds a sealed chunk to those the writer is to write, and
// urges the writer once they make a batch. The caller holds mu.
func (l *LogSocket) queueChunk(k *chunk) {
	l.sealed = append(l.sealed, k)
	l.sealedBytes += k.used
	if l.sealedBytes >= batchBytes {
		signal(l.urge)
	}
}

// installChunk makes a fresh chunk current, if one fits within
// BufferBytes. The caller holds mu.
func (l *LogSocket) installChunk() bool {
	if !l.held.fits(l.chunkLen - HeaderLen) {
		return false
	}
	var k *chunk
	if n := len(l.free); n > 0 {
		k, l.free[n-1] = l.free[n-1], nil
		l.free = l.free[:n-1]
		// A caller that loaded this chunk before it was sealed may append
		// once it is current again: that is an append to the current
		// chunk, in order. It cannot append while the chunk is free,
		// sealed.
		k.state.Store(0)
	} else {
		k = &chunk{buf: make([]byte, l.chunkLen)}
	}
	l.held.outside += len(k.buf)
	l.cur.Store(k)
	return true
}

// recycle ends the use of a sealed chunk: its room returns to BufferBytes,
// and its memory is kept for the next, unless it was a large frame's
// own. The caller holds mu.
func (l *LogSocket) recycle(k *chunk) {
	l.held.outside -= len(k.buf)
	if len(k.buf) == l.chunkLen {
		l.free = append(l.free, k)
	}
}

// drainStage moves the frames of the chunks into the queue, after those
// held there: the queue then holds every frame in order, for the overflow
// policies and for Close. The caller holds mu.
func (l *LogSocket) drainStage() {
	l.sealCurrent()
	for i, k := range l.sealed {
		l.held.pushFrames(k.buf[:k.used], k.frames)
		l.recycle(k)
		l.sealed[i] = nil
	}
	l.sealed, l.sealedBytes = l.sealed[:0], 0
}

// stagePending reports the frames and bytes in the chunks, not counting a
// batch being written. The caller holds mu.
func (l *LogSocket) stagePending() (frames, bytes int) {
	for _, k := range l.sealed {
		frames += k.frames
		bytes += k.used
	}
	if k := l.cur.Load(); k != nil {
		f, b := k.pending()
		frames += f
		bytes += b
	}
	return frames, bytes
}

// wholeFrames counts the frames of b that lie whole within its first
// written bytes, and their message bytes; cut is where the first frame
// not written whole starts.
func wholeFrames(order ByteOrder, b []byte, written int) (frames, msgBytes, cut int) {
	for cut+HeaderLen <= len(b) {
		n := HeaderLen + int(order.get(b[cut:]))
		if cut+n > written {
			break
		}
		cut += n
		frames++
		msgBytes += n - HeaderLen
	}
	return frames, msgBytes, cut
}

package logsock

import (
	"runtime"
	"sync/atomic"
)

// In batching mode, Log appends its frame to a chunk of memory without
// taking a lock: it reserves room with one compare-and-swap on the chunk's
// state word, copies the frame in, and marks the copy done with one atomic
// add. Callers on different cores copy at the same time, and none waits
// for another, or for the writer, as a mutex would make them (issue 5).
// The queue (queue.go) decides which chunk is current, seals chunks, and
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
}

// tryAppend appends msg as a frame, unless the chunk is sealed or has no
// room. first reports that it is the chunk's first frame: the writer is
// to be woken.
func (k *chunk) tryAppend(f framing, msg []byte) (first, ok bool) {
	n := uint64(f.size(len(msg)))
	for {
		st := k.state.Load()
		off := st & offMask
		if st&sealedBit != 0 || off+n > uint64(len(k.buf)) {
			return false, false
		}
		if k.state.CompareAndSwap(st, st+n+oneFrame+oneWriter) {
			f.put(k.buf[off:off+n], msg)
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

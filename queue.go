package logsock

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sys/cpu"
)

// A queue holds the frames that a LogSocket has accepted and not yet
// written: in direct mode, those held while the collector is unreachable
// and after a frame whose write failed; in batching mode, every frame
// until the writer takes it. It owns Config.BufferBytes and the Overflow
// policy, which act the same in both modes, and counts every frame it
// drops. It never waits itself: under Block, its owner's wait makes room.
//
// The frames are held in order in held. In batching mode they are first
// appended without a lock (tryAppend) to chunks (chunk.go): the current
// chunk, then the sealed ones, which are written after held, in the order
// they were sealed. Chunks count against BufferBytes whole, from when they
// are installed until their write ends.
//
// The owner's mutex guards a queue, except tryAppend.
type queue struct {
	// Read by every append of batching mode. The pad keeps them off the
	// cache line of what the writer changes at every batch: sharing it
	// cost a fifth of batching mode's speed over a Unix socket, where
	// batches are small and many (bench, 100 B, 1 goroutine: 22.6M
	// frames/s against 25.9M).
	cur atomic.Pointer[chunk] // the chunk that tryAppend appends to
	f   framing
	// maxFrame is the longest message that Log takes: MaxFrame, or less
	// once the collector has refused a frame (cut).
	maxFrame atomic.Int64
	_        cpu.CacheLinePad

	limit   int // BufferBytes
	policy  Overflow
	dropped atomic.Uint64 // frames dropped: by the policy, or left at Close

	held     frameQueue
	refused  error         // why a frame was dropped as one the collector refuses, until Flush or Close reports it
	reserved int           // bytes of held frames in a batch being written
	room     chan struct{} // if not nil, closed when frames leave: waiters under Block wake

	// Batching mode, with chunks when chunkLen > 0.
	chunkLen    int
	sealed      []*chunk // to write, after held
	sealedBytes int      // bytes in sealed
	free        []*chunk // written, to reuse
	outside     int      // bytes of the chunks in use, in flight included
}

// waitFunc is how the owner of a queue waits, under Block, for room for
// size more bytes, headers included: it returns nil once the queue has
// room for them (roomFor), ErrBufferFull at deadline, or ErrClosed once
// Close has begun.
type waitFunc func(size int, deadline time.Time) error

// newQueue returns a queue for cfg, of frames in f. chunkLen is the size
// of the chunks (0: none); least is the least memory that held takes when
// it needs some.
func newQueue(cfg *Config, f framing, chunkLen, least int) *queue {
	q := &queue{
		f:        f,
		limit:    cfg.BufferBytes,
		policy:   cfg.Overflow,
		held:     frameQueue{f: f, most: cfg.BufferBytes, least: least},
		chunkLen: chunkLen,
	}
	q.maxFrame.Store(int64(cfg.MaxFrame))
	return q
}

// roomFor reports whether size more bytes fit within BufferBytes.
func (q *queue) roomFor(size int) bool {
	return q.held.len()+q.reserved+q.outside+size <= q.limit
}

// empty reports whether no frame is held (direct mode: there are no
// chunks).
func (q *queue) empty() bool { return q.held.empty() }

// hold adds msg to the held frames. If there is no room, the policy
// decides: Block calls wait, DropNewest drops msg, DropOldest drops the
// oldest frames not in a batch being written (and msg, if that is not
// enough). A frame too large ever to fit is dropped at once. Each drop is
// counted; the frame dropped, if it is msg, makes the error
// ErrBufferFull.
func (q *queue) hold(msg []byte, deadline time.Time, wait waitFunc) error {
	size := q.f.size(len(msg))
	if size > q.limit { // no wait would make room
		q.dropped.Add(1)
		return ErrBufferFull
	}
	if !q.roomFor(size) {
		if err := q.makeRoom(size, deadline, wait); err != nil {
			return err
		}
	}
	q.held.push(msg)
	return nil
}

// makeRoom applies the policy for a frame of size bytes that does not
// fit: nil once it does; else ErrBufferFull, the frame counted as dropped,
// or ErrClosed.
func (q *queue) makeRoom(size int, deadline time.Time, wait waitFunc) error {
	switch q.policy {
	case DropOldest:
		q.drainChunks()
		for !q.roomFor(size) && !q.held.empty() {
			q.held.dropOldest()
			q.dropped.Add(1)
		}
		if q.roomFor(size) {
			return nil
		}
	case Block:
		err := wait(size, deadline)
		if err == nil || errors.Is(err, ErrClosed) {
			return err
		}
	}
	q.dropped.Add(1)
	return ErrBufferFull
}

// add is hold for batching mode: msg goes to a chunk, the current one or
// a fresh one, while they fit; Block waits for a chunk's room. The other
// policies act on held, frame by frame, as without chunks: the chunks'
// frames move there first.
func (q *queue) add(msg []byte, deadline time.Time, wait waitFunc) error {
	size := q.f.size(len(msg))
	if size > q.limit {
		q.dropped.Add(1)
		return ErrBufferFull
	}
	for q.chunkLen > 0 {
		if q.stage(msg) {
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
	return q.hold(msg, deadline, wait)
}

// roomFreed returns a channel that is closed when frames next leave the
// queue.
func (q *queue) roomFreed() <-chan struct{} {
	if q.room == nil {
		q.room = make(chan struct{})
	}
	return q.room
}

// freed wakes the waiters for room.
func (q *queue) freed() {
	if q.room != nil {
		close(q.room)
		q.room = nil
	}
}

// wrote accounts for a write of the held frames (direct mode) of which n
// bytes went out, and that failed with err, or did not: the frames written
// whole leave; one cut stays, whole, and is marked as tried. It returns the
// frames written whole, their message bytes, and whether the first had
// been tried before.
func (q *queue) wrote(n int, err error) (frames, msgBytes int, retried bool) {
	retried = q.held.retry
	before := q.held.len()
	frames, msgBytes = q.held.consume(n)
	if err != nil {
		q.held.retry = true
		q.cut(n-(before-q.held.len()), err)
	} else {
		q.held.shrink()
	}
	if frames > 0 {
		q.freed()
	}
	return frames, msgBytes, retried
}

// holdRetry holds msg, whose write failed with err after partial bytes of
// it went out, whole, first in an empty queue, to be sent again.
func (q *queue) holdRetry(msg []byte, partial int, err error) error {
	if err := q.hold(msg, time.Time{}, nil); err != nil { // it fits an empty queue, or never
		return err
	}
	q.held.retry = true
	q.cut(partial, err)
	return nil
}

// maxCuts is how many connections in a row the collector may end while
// the same frame is being written before that frame is taken for one it
// refuses, and dropped: sent again for ever, it would hold up every frame
// behind it (issue 17: a frame above the collector's MaxFrame stopped all
// logging, silently). Three tell a refusal from a collector that dies, or
// restarts, once or twice in the middle of a large frame.
const maxCuts = 3

// cut follows the first frame held after a write that failed with err
// once partial bytes of that frame had gone out. If the collector ended
// the connection (a reset or a broken pipe: not a timeout, which is a slow
// collector's), it counts a cut; at maxCuts, or at the first cut of a frame
// above the limit already learned, the frame is dropped, counted, and
// reported by the next Flush or Close, and Log refuses frames of its size
// from then on.
func (q *queue) cut(partial int, err error) {
	if partial <= 0 || q.held.empty() || !endedByPeer(err) {
		return
	}
	q.held.cuts++
	_, size := q.f.frame(q.held.bytes())
	if q.held.cuts < maxCuts && int64(size) <= q.maxFrame.Load() {
		return
	}
	cuts := q.held.cuts
	q.held.dropOldest()
	q.dropped.Add(1)
	q.freed()
	if int64(size) <= q.maxFrame.Load() {
		q.maxFrame.Store(int64(size) - 1)
	}
	q.refused = fmt.Errorf("%w: the collector ended %d connections in a row inside a frame of %d bytes (last: %w): "+
		"dropped; frames of %d bytes or more are refused from now on", ErrFrameTooLarge, cuts, size, err, q.maxFrame.Load()+1)
}

// takeRefused returns, once, why a frame was dropped as one that the
// collector refuses (cut), joined to err.
func (q *queue) takeRefused(err error) error {
	if q.refused == nil {
		return err
	}
	refused := q.refused
	q.refused = nil
	return errors.Join(err, refused)
}

// pending returns the frames and bytes queued, not counting a batch being
// written.
func (q *queue) pending() (frames, bytes int) {
	frames, bytes = q.held.frames, q.held.len()
	for _, k := range q.sealed {
		frames += k.frames
		bytes += k.used
	}
	if k := q.cur.Load(); k != nil {
		f, b := k.pending()
		frames += f
		bytes += b
	}
	return frames, bytes
}

// dropAll drops every frame queued, counts them, and returns how many:
// what Close could not deliver.
func (q *queue) dropAll() int {
	q.drainChunks()
	n := q.held.frames
	q.dropped.Add(uint64(n))
	q.held.reset()
	return n
}

// The chunks of batching mode.

// tryAppend appends msg to the current chunk without the lock, if there is
// one with room; first reports that it is the chunk's first frame.
func (q *queue) tryAppend(msg []byte) (first, ok bool) {
	k := q.cur.Load()
	if k == nil {
		return false, false
	}
	return k.tryAppend(q.f, msg)
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
func (q *queue) stage(msg []byte) bool {
	for {
		if _, ok := q.tryAppend(msg); ok {
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
			q.f.put(k.buf, msg)
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
	frames, msgBytes = b.held.consume(min(n, heldLen))
	partial := n - (heldLen - b.held.len()) // bytes of the first frame left, if it was cut
	n -= heldLen
	for i, k := range b.chunks {
		if n >= k.used && !q.f.octets {
			frames += k.frames
			msgBytes += k.used - k.frames*HeaderLen
			n -= k.used
			partial -= k.used
		} else {
			// Octet counts vary in size: the message bytes are counted frame
			// by frame. And if the write failed before the end of this
			// chunk, the frames not written whole go back, before those
			// queued since.
			f, mb, cut := wholeFrames(q.f, k.buf[:k.used], max(n, 0))
			frames += f
			msgBytes += mb
			b.held.pushFrames(k.buf[cut:k.used], k.frames-f) // none if it went out whole
			if n > 0 {
				partial -= min(cut, n)
			}
			n = max(n-k.used, 0)
		}
		q.recycle(k)
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

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

	// Protocol v2 (Config.Acks): a frame is numbered as it enters held, or
	// as its chunk is sealed, in the order of the stream; written, it stays
	// in sent until acknowledged (ackq.go).
	nextSeq   uint64        // the last number given
	last      atomic.Uint64 // nextSeq, for the link's dials
	floor     atomic.Uint64 // the lowest number not acknowledged: a new connection's hello says it
	sent      sentQueue     // written on conn, not acknowledged
	sentFirst uint64        // the number of sent's first frame
	sentLast  uint64        // the number of the last frame that entered sent
	acked     uint64        // the highest number acknowledged
	conn      *conn         // the connection that sent's frames were written on
	ackCount  atomic.Uint64 // frames acknowledged
	resent    atomic.Uint64 // frames sent again after their connection was lost

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
	q.floor.Store(1)
	return q
}

// roomFor reports whether size more bytes fit within BufferBytes.
func (q *queue) roomFor(size int) bool {
	return q.held.len()+q.sent.len()+q.reserved+q.outside+size <= q.limit
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
func (q *queue) hold(msg []byte, m meta, deadline time.Time, wait waitFunc) error {
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
	if q.f.v2 {
		m.seq = q.number()
	}
	q.held.push(msg, m)
	return nil
}

// makeRoom applies the policy for a frame of size bytes that does not
// fit: nil once it does; else ErrBufferFull, the frame counted as dropped,
// or ErrClosed.
func (q *queue) makeRoom(size int, deadline time.Time, wait waitFunc) error {
	switch q.policy {
	case DropOldest:
		q.drainChunks()
		for !q.roomFor(size) && !q.sent.empty() { // the oldest: written, not acknowledged
			q.dropSent()
		}
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
	if q.f.v2 {
		f, _, cut := wholeFrames(q.f, q.held.bytes(), n)
		q.toSent(q.held.bytes()[:cut], f)
	}
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
	if err := q.hold(msg, meta{}, time.Time{}, nil); err != nil { // it fits an empty queue, or never
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
	n := q.held.frames + q.sent.frames
	q.dropped.Add(uint64(n))
	q.held.reset()
	q.dropAllSent()
	return n
}

// frameQueue holds whole encoded frames (header and message) in order, in
// one contiguous run of bytes, so that they go out in as few writes as the
// kernel allows. The queue keeps its frames in one, and bounds
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
func (q *frameQueue) push(msg []byte, m meta) {
	n := q.f.size(len(msg))
	q.grow(n)
	q.buf = q.buf[:len(q.buf)+n]
	q.f.put(q.buf[len(q.buf)-n:], msg, m)
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

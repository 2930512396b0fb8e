package logsock

import (
	"math"
	"os"
	"sync"
	"sync/atomic"
)

// defaultMaxMemory is the default bound on the read buffers of a Server's
// connections (Server.MaxMemory): 128 MiB, which a host with 1 GiB of
// memory can spare, and which holds 128 frames of DefaultMaxFrame at once.
const defaultMaxMemory = 128 << 20

// spareBufs bounds the free buffers of maxReadBuf bytes that a Server keeps
// for its busy connections (4 MiB) once they are idle: a connection that
// goes idle gives its buffer back, and one that wakes takes one, many
// times a second under load, so while buffers are in use as many more are
// kept. Beyond that they are unmapped, so that memory that a burst or an
// attack took is given back to the system at once. (A new mapping costs a
// page fault a page touched: about 15 us each in the Firecracker VM of the
// benchmarks, 240 us a buffer.)
const spareBufs = 64

var pageSize = os.Getpagesize()

// memory is a Server's budget for its connections' large read buffers:
// the buffer of maxReadBuf bytes of a busy connection, and the buffer of a
// frame that does not fit in it. (The first, small buffer of each
// connection is not counted: MaxConns bounds those.) A buffer is charged
// at its full size when it is lent, whatever has arrived in it; on Unix it
// is mapped apart from Go's heap, so that it costs the pages that bytes
// have reached, and it is unmapped when it is given back: the memory
// returns to the system at once, with no wait for a garbage collection
// (issue 20: 2.16 GB still held five seconds after an attacker left).
//
// A charge that does not fit waits, in the order of arrival, until one
// does: its connection pauses, and reads nothing meanwhile. A connection
// waits holding at most the buffer it had; when every charged byte is held
// by waiting connections, none of them could ever free one, so the first
// is let through beyond the limit: the budget can be exceeded by one frame.
type memory struct {
	limit   int64        // set before the first connection
	used    atomic.Int64 // bytes charged
	waiting atomic.Int32 // len(queue), to be read without mu

	mu    sync.Mutex   // guards the fields below
	queue []*memWaiter // charges waiting, oldest first
	held  int64        // bytes charged to the connections waiting
	spare [][]byte     // free buffers of maxReadBuf bytes (see spareBufs)
	busy  int          // buffers of maxReadBuf bytes lent
}

// memWaiter is a charge waiting for memory.
type memWaiter struct {
	n, holding int64
	granted    atomic.Bool
	wake       chan<- struct{} // signalled when granted
}

// setLimit sets the budget from Server.MaxMemory: zero means
// defaultMaxMemory, a negative value no limit.
func (m *memory) setLimit(limit int) {
	switch {
	case limit == 0:
		m.limit = defaultMaxMemory
	case limit < 0:
		m.limit = math.MaxInt64
	default:
		m.limit = int64(limit)
	}
}

// size is what a buffer of n bytes is charged: the pages it spans.
func bufSize(n int) int64 {
	return int64((n + pageSize - 1) / pageSize * pageSize)
}

// tryCharge charges n bytes if they fit and no charge is waiting.
func (m *memory) tryCharge(n int64) bool {
	if m.waiting.Load() > 0 {
		return false
	}
	for {
		u := m.used.Load()
		if u+n > m.limit {
			return false
		}
		if m.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

// charge charges n bytes, or queues the charge: then it returns the
// waiter, which wake is signalled for once granted. holding is what the
// caller keeps charged while it waits.
func (m *memory) charge(n, holding int64, wake chan<- struct{}) *memWaiter {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.queue) == 0 && m.tryCharge(n) {
		return nil
	}
	w := &memWaiter{n: n, holding: holding, wake: wake}
	m.queue = append(m.queue, w)
	m.waiting.Add(1)
	m.held += holding
	m.grant()
	return w
}

// grant lets through the waiting charges that fit, in order. m.mu is held.
func (m *memory) grant() {
	for len(m.queue) > 0 {
		w := m.queue[0]
		if u := m.used.Load(); u+w.n > m.limit && u > m.held {
			return // a connection that is not waiting will give memory back
		}
		m.used.Add(w.n)
		m.held -= w.holding
		m.queue[0] = nil
		m.queue = m.queue[1:]
		m.waiting.Add(-1)
		w.granted.Store(true)
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	m.queue = nil // let the backing array go
}

// cancel withdraws a waiting charge. It returns false if the charge was
// granted meanwhile: the caller then owns it, and uncharges it.
func (m *memory) cancel(w *memWaiter) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if w.granted.Load() {
		return false
	}
	for i, q := range m.queue {
		if q == w {
			m.queue = append(m.queue[:i], m.queue[i+1:]...)
			break
		}
	}
	m.waiting.Add(-1)
	m.held -= w.holding
	m.grant() // the first may have been the one in the way
	return true
}

// uncharge gives n bytes back, and lets waiting charges through.
func (m *memory) uncharge(n int64) {
	m.used.Add(-n)
	if m.waiting.Load() > 0 {
		m.mu.Lock()
		m.grant()
		m.mu.Unlock()
	}
}

// buf returns a buffer of n bytes, with the capacity that bufSize charges:
// a spare one for maxReadBuf, else a new mapping.
func (m *memory) buf(n int) ([]byte, error) {
	if n == maxReadBuf {
		m.mu.Lock()
		m.busy++
		if k := len(m.spare); k > 0 {
			b := m.spare[k-1]
			m.spare = m.spare[:k-1]
			m.mu.Unlock()
			return b, nil
		}
		m.mu.Unlock()
	}
	b, err := mapBuf(int(bufSize(n)))
	if err != nil {
		if n == maxReadBuf {
			m.mu.Lock()
			m.busy--
			m.mu.Unlock()
		}
		return nil, err
	}
	return b[:n], nil
}

// free uncharges a buffer that buf returned and gives it back: to the
// spares, or to the system.
func (m *memory) free(b []byte) {
	n := cap(b)
	if n == maxReadBuf {
		m.mu.Lock()
		m.busy--
		keep := max(spareBufs, m.busy)
		if len(m.spare) < keep {
			m.spare = append(m.spare, b[:n])
			b = nil
		}
		for len(m.spare) > keep { // kept while others were busy: no longer
			unmapBuf(m.spare[len(m.spare)-1])
			m.spare[len(m.spare)-1] = nil
			m.spare = m.spare[:len(m.spare)-1]
		}
		m.mu.Unlock()
	}
	if b != nil {
		unmapBuf(b[:n])
	}
	m.uncharge(int64(n))
}

package logsock

import "testing"

// TestMemoryBudget: charges that fit pass, others wait in the order they
// came (a small one behind a large one too), a freed charge lets them
// through, a cancelled one leaves the queue; and when every charged byte
// is held by waiters, the first waiter passes beyond the limit, since
// none of them could ever free a byte.
func TestMemoryBudget(t *testing.T) {
	var m memory
	m.setLimit(100)
	wake := func() chan struct{} { return make(chan struct{}, 1) }
	granted := func(w *memWaiter) bool { return w == nil || w.granted.Load() }

	if w := m.charge(60, 0, wake()); !granted(w) {
		t.Fatal("60 of 100: not granted")
	}
	big := m.charge(60, 0, wake())
	smallWake := wake()
	small := m.charge(10, 0, smallWake)
	if granted(big) || granted(small) {
		t.Fatalf("granted beyond the limit, or out of order: big %v, small %v", granted(big), granted(small))
	}
	if m.tryCharge(1) {
		t.Error("tryCharge passed charges that wait")
	}
	if n := m.waiting.Load(); n != 2 {
		t.Errorf("waiting %d, want 2", n)
	}
	m.uncharge(60)
	if !granted(big) || !granted(small) {
		t.Fatalf("after 60 freed: big %v, small %v; want both granted", granted(big), granted(small))
	}
	if u := m.used.Load(); u != 70 {
		t.Errorf("used %d, want 70", u)
	}
	select {
	case <-smallWake:
	default:
		t.Error("a granted waiter was not woken")
	}

	// A cancelled waiter leaves the queue, and lets the next through.
	blocked := m.charge(50, 0, wake())
	next := m.charge(20, 0, wake())
	if granted(blocked) || granted(next) {
		t.Fatal("granted beyond the limit")
	}
	if !m.cancel(blocked) {
		t.Fatal("cancel of a waiting charge reported it granted")
	}
	if !granted(next) {
		t.Error("the charge behind a cancelled one still waits, though it fits")
	}
	m.uncharge(70 + 20)

	// Every charged byte held by waiters: the first passes, beyond the limit.
	m.setLimit(100)
	if w := m.charge(64, 0, wake()); !granted(w) {
		t.Fatal("64 of 100: not granted")
	}
	stuck := m.charge(80, 64, wake()) // it holds the 64 while it waits
	if !granted(stuck) {
		t.Fatalf("a waiter holding all that is charged was not let through (used %d, held %d)", m.used.Load(), m.held)
	}
	if u := m.used.Load(); u != 144 {
		t.Errorf("used %d, want 144", u)
	}
	m.uncharge(144)

	// A charge larger than the whole budget passes when nothing is held.
	if w := m.charge(1000, 0, wake()); !granted(w) {
		t.Error("a charge beyond the budget did not pass with nothing held")
	}
	m.uncharge(1000)
	if m.used.Load() != 0 || m.held != 0 || m.waiting.Load() != 0 {
		t.Errorf("at the end: used %d, held %d, waiting %d; want all 0", m.used.Load(), m.held, m.waiting.Load())
	}
}

// TestMemoryBuffers: a buffer is charged what it spans; free buffers of
// maxReadBuf are kept for reuse, as many as are in use (so that busy
// connections cycling do not map and fault in new ones) but at least
// spareBufs, and once all are free the rest are unmapped; freeing
// uncharges.
func TestMemoryBuffers(t *testing.T) {
	var m memory
	m.setLimit(-1)
	take := func(k int) (bufs [][]byte) {
		for range k {
			m.tryCharge(bufSize(maxReadBuf))
			b, err := m.buf(maxReadBuf)
			if err != nil {
				t.Fatal(err)
			}
			b[0], b[len(b)-1] = 1, 1 // mapped and writable
			bufs = append(bufs, b)
		}
		return bufs
	}
	free := func(bufs [][]byte) {
		for _, b := range bufs {
			m.free(b)
		}
	}
	bufs := take(200)
	free(bufs[:100])
	if n := len(m.spare); n != 100 {
		t.Errorf("%d spare buffers with 100 in use, want 100", n)
	}
	bufs = append(bufs[100:], take(50)...)
	if n := len(m.spare); n != 50 {
		t.Errorf("%d spare buffers after 50 were taken again, want 50", n)
	}

	big, err := m.buf(1<<20 + 4)
	if err != nil {
		t.Fatal(err)
	}
	m.tryCharge(bufSize(1<<20 + 4))
	if len(big) != 1<<20+4 || int64(cap(big)) != bufSize(1<<20+4) || cap(big)%pageSize != 0 {
		t.Errorf("frame buffer len %d cap %d, want %d and whole pages", len(big), cap(big), 1<<20+4)
	}
	big[len(big)-1] = 1
	m.free(big)
	free(bufs)
	if n := len(m.spare); n != spareBufs {
		t.Errorf("%d spare buffers with none in use, want %d", n, spareBufs)
	}
	if u := m.used.Load(); u != 0 || m.busy != 0 {
		t.Errorf("used %d, %d lent, after every buffer was freed", u, m.busy)
	}
	for _, b := range m.spare {
		unmapBuf(b)
	}
}

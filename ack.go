package logsock

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// The client's side of protocol v2 (Config.Acks): the hellos, and the
// collector's acknowledgements, read from the connection by whoever holds
// its read lock. The queue applies them (queue.go).

// clientSession is a v2 client's identity, drawn once, kept across reconnects.
type clientSession struct {
	id  SessionID
	tag string
}

// newSession draws a session id for a client named tag.
func newSession(tag string) clientSession {
	s := clientSession{tag: tag}
	for s.id == (SessionID{}) {
		rand.Read(s.id[:]) // never fails (crypto/rand since Go 1.24)
	}
	return s
}

// defaultTag is the tag of a client that set none: the program's name,
// cut to what a tag may hold, or "logsock".
func defaultTag() string {
	name := filepath.Base(os.Args[0])
	b := make([]byte, 0, maxTagLen)
	for i := 0; i < len(name) && len(b) < maxTagLen; i++ {
		if c := name[i]; c >= 33 && c <= 126 {
			b = append(b, c)
		}
	}
	if len(b) == 0 {
		return "logsock"
	}
	return string(b)
}

// acks is a v2 connection's state of what the collector said: its hello,
// then its acknowledgements. The reader (readAcks) fills it under mu; the
// queue's owner takes what it says with the atomics, without mu, which a
// reader that waits (awaitAcks) holds.
type acks struct {
	maxFrame   int    // the collector's hello: the longest message it takes
	helloAcked uint64 // and the session's last frame it had

	mu  sync.Mutex // the read lock: one reader of the connection at a time
	buf [1024]byte // a message cut by the read, and room for the next
	n   int
	now arrivedReader // reads what has arrived, without waiting

	upTo       atomic.Uint64 // the highest number written on the connection, or about to be
	acked      atomic.Uint64 // the last cumulative acknowledgement
	goodbye    atomic.Bool   // the collector is shutting down: write nothing more
	err        atomic.Pointer[error]
	refusedM   sync.Mutex
	refused    []ackRefusal // 'R' messages not yet taken by the queue
	anyRefused atomic.Bool  // refused is not empty
}

// ackRefusal is a frame that the collector refused.
type ackRefusal struct {
	seq uint64
	why uint8
}

// errBadAck is the cause of a connection dropped because the collector's
// acknowledgements broke the protocol.
var errBadAck = errors.New("bad acknowledgement")

// fail records why the connection is not to be used any more, once.
func (a *acks) fail(err error) {
	a.err.CompareAndSwap(nil, &err)
}

// failed returns why the connection is not to be used, or nil.
func (a *acks) failed() error {
	if p := a.err.Load(); p != nil {
		return *p
	}
	return nil
}

// takeRefused returns the refusals read, in order, and forgets them.
func (a *acks) takeRefused() []ackRefusal {
	a.refusedM.Lock()
	defer a.refusedM.Unlock()
	r := a.refused
	a.refused = nil
	a.anyRefused.Store(false)
	return r
}

// hello2 exchanges the hellos on c, a new connection, before deadline:
// the client's, with next as the first number it will send, then the
// collector's answer, which it keeps in c.acks.
func (k *link) hello2(c *conn, next uint64, deadline time.Time) error {
	order := k.order
	h := hello{pid: int32(os.Getpid()), session: k.session.id, next: next, tag: k.session.tag}
	rw := c.stream()
	if err := c.nc.SetDeadline(deadline); err != nil {
		return err
	}
	if _, err := rw.Write(order.appendHello(nil, &h)); err != nil {
		return err
	}
	var b [serverHelloLen]byte
	if _, err := io.ReadFull(rw, b[:]); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("no answer to the v2 hello in time (a collector that speaks only v1?): %w", err)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("the collector closed the connection after the v2 hello (one that speaks only v1?): %w", err)
		}
		return err
	}
	sh, err := order.parseServerHello(b[:])
	if err != nil {
		return err
	}
	if sh.acked > k.nextSeq() { // a frame never numbered
		return fmt.Errorf("%w: the collector's hello says frame %d arrived; the last numbered is %d", errBadAck, sh.acked, k.nextSeq())
	}
	a := &acks{maxFrame: int(sh.maxFrame), helloAcked: sh.acked}
	a.acked.Store(sh.acked)
	a.upTo.Store(sh.acked)
	c.acks = a
	return c.nc.SetDeadline(time.Time{})
}

// readAcks reads what the collector has sent on c: what has arrived if
// wait is 0, else for up to wait, until a message arrives. It returns
// false if c is not to be used any more (the end, an error, or a message
// that breaks the protocol: c.acks.failed says which). The caller holds
// c.acks.mu.
func (k *link) readAcks(c *conn, wait time.Duration) bool {
	a := c.acks
	if a.failed() != nil {
		return false
	}
	// Without a wait, what has arrived is read without a deadline (the
	// clock could pass one before the read, on a busy machine), through
	// the TLS layer if there is one.
	now := wait == 0 && canPeek
	if wait == 0 && !canPeek {
		wait = 100 * time.Microsecond // no recv that does not wait (Windows)
	}
	// What has arrived is read whole, a buffer at a time: a collector
	// acknowledges once a read, and acknowledgements left unread would fill
	// its send buffer.
	for {
		room := len(a.buf) - a.n
		var n int
		var err error
		switch {
		case now && c.tls != nil:
			n, err = c.peekTLS(a.buf[a.n:])
		case now:
			n, err = a.now.read(c.rc, a.buf[a.n:])
		default:
			if err := c.nc.SetReadDeadline(time.Now().Add(wait)); err != nil {
				a.fail(err)
				return false
			}
			n, err = c.stream().Read(a.buf[a.n:])
		}
		if n > 0 {
			a.n += n
			if !k.parseAcks(a) {
				if !now {
					c.nc.SetReadDeadline(time.Time{})
				}
				return false
			}
		}
		switch {
		case err == nil && (n == room || now):
			if !now {
				wait = time.Millisecond // more may have arrived: read on, without waiting
			}
			continue
		case err == nil, errors.Is(err, os.ErrDeadlineExceeded):
			if !now {
				c.nc.SetReadDeadline(time.Time{})
			}
			return true
		case err == io.EOF:
			err = errPeerClosed
		}
		if !now {
			c.nc.SetReadDeadline(time.Time{})
		}
		a.fail(err)
		return false
	}
}

// parseAcks takes the whole messages in a.buf[:a.n].
func (k *link) parseAcks(a *acks) bool {
	b := a.buf[:a.n]
	for len(b) > 0 {
		m, size, err := k.order.parseCollectorMsg(b)
		if err != nil {
			a.fail(err)
			return false
		}
		if size == 0 {
			break
		}
		b = b[size:]
		switch m.kind {
		case msgGoodbye:
			a.goodbye.Store(true)
			continue
		case msgRefuse:
			a.refusedM.Lock()
			a.refused = append(a.refused, ackRefusal{m.n, m.why})
			a.anyRefused.Store(true)
			a.refusedM.Unlock()
		}
		prev := a.acked.Load()
		if m.n < prev || m.n > a.upTo.Load() {
			a.fail(fmt.Errorf("%w: frame %d acknowledged after %d, with %d the last written", errBadAck, m.n, prev, a.upTo.Load()))
			return false
		}
		a.acked.Store(m.n)
	}
	a.n = copy(a.buf[:], b)
	return true
}

// pollAcks reads, without waiting, what has arrived on c, if no one else
// is reading it; false if c is not to be used any more.
func (k *link) pollAcks(c *conn) bool {
	if !c.acks.mu.TryLock() {
		return c.acks.failed() == nil
	}
	defer c.acks.mu.Unlock()
	return k.readAcks(c, 0)
}

// awaitAcks reads c for up to wait, until a message arrives; false if c
// is not to be used any more. The caller holds no lock that writers need.
func (k *link) awaitAcks(c *conn, wait time.Duration) bool {
	c.acks.mu.Lock()
	defer c.acks.mu.Unlock()
	return k.readAcks(c, max(wait, time.Microsecond))
}

// errGoodbye is why a connection is dropped after the collector's
// goodbye.
var errGoodbye = errors.New("the collector is shutting down")

// goodbyeWait bounds the wait, after a goodbye, for the acknowledgement of
// what was written: a collector that drains reads on and acknowledges at
// once.
const goodbyeWait = time.Second

// usable2 is usable for v2: it reads the acknowledgements that arrived if
// PeekInterval has passed since it last did, and drops c if the collector
// has ended it, said goodbye, or broken the protocol. After a goodbye it
// first waits, for up to goodbyeWait, for the acknowledgement of what was
// written, so that little is sent twice.
func (k *link) usable2(c *conn) bool {
	a := c.acks
	if time.Since(c.lastCheck) >= k.ackEvery {
		c.lastCheck = time.Now()
		k.pollAcks(c)
	}
	if a.goodbye.Load() {
		deadline := time.Now().Add(min(goodbyeWait, k.writeTimeout))
		for a.acked.Load() < a.upTo.Load() && a.failed() == nil {
			wait := time.Until(deadline)
			if wait <= 0 || !k.awaitAcks(c, wait) {
				break
			}
		}
		k.lose(c, k.opError("write", errGoodbye))
		return false
	}
	if err := a.failed(); err != nil {
		k.lose(c, k.opError("read", err))
		return false
	}
	return true
}

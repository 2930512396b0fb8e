package logsock

import (
	"sync"
	"time"
)

// A Server's v2 sessions (issue 19): per session, the last frame handed
// to a Handler and the last acknowledged, so that a frame sent again
// after a lost acknowledgement is dropped, and acknowledged, rather than
// handed over twice.

// The bound of the session table: a session without a connection for
// sessionIdle is forgotten, and beyond maxSessions the one idle longest
// is. A client that comes back after that has what it sends again
// handed over again.
const (
	sessionIdle = time.Hour
	maxSessions = 100000
)

// session is one client's, across its connections. Its fields are
// guarded by sessions.mu.
type session struct {
	id    SessionID
	taken uint64 // the last frame handed to a Handler, or Resume's
	acked uint64 // every frame up to this one is acknowledged
	open  *serverConn
	// conns are its connections whose frames are not all acknowledged,
	// oldest first: the open one, and those that ended with records
	// deferred. Each one's frames follow the previous one's.
	conns      []*serverConn
	resumed    uint64 // Resume's, for the next connection
	idleSince  time.Time
	prev, next *session // the idle list, while open is nil
	listed     bool     // in the idle list
}

// sessions is a Server's table of sessions.
type sessions struct {
	mu         sync.Mutex // guards the fields below, and the sessions'
	m          map[SessionID]*session
	head, tail *session // the idle list, longest idle first
}

// get returns the session id, made if it is new (and idle). mu is held.
func (t *sessions) get(id SessionID, now time.Time) *session {
	t.expire(now)
	if sess := t.m[id]; sess != nil {
		return sess
	}
	if t.m == nil {
		t.m = make(map[SessionID]*session)
	}
	sess := &session{id: id}
	t.m[id] = sess
	t.idle(sess, now)
	for len(t.m) > maxSessions && t.head != nil {
		t.forget(t.head)
	}
	return sess
}

// expire forgets the sessions idle for sessionIdle. mu is held.
func (t *sessions) expire(now time.Time) {
	for t.head != nil && now.Sub(t.head.idleSince) > sessionIdle {
		t.forget(t.head)
	}
}

func (t *sessions) forget(sess *session) {
	t.unlink(sess)
	delete(t.m, sess.id)
}

// idle puts sess at the end of the idle list.
func (t *sessions) idle(sess *session, now time.Time) {
	sess.idleSince, sess.prev, sess.next, sess.listed = now, t.tail, nil, true
	if t.tail != nil {
		t.tail.next = sess
	} else {
		t.head = sess
	}
	t.tail = sess
}

func (t *sessions) unlink(sess *session) {
	if !sess.listed {
		return
	}
	if sess.prev != nil {
		sess.prev.next = sess.next
	} else {
		t.head = sess.next
	}
	if sess.next != nil {
		sess.next.prev = sess.prev
	} else {
		t.tail = sess.prev
	}
	sess.prev, sess.next, sess.listed = nil, nil, false
}

func (t *sessions) count() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expire(time.Now())
	return uint64(len(t.m))
}

// Resume sets session's last frame, learned after a restart: frames up to seq
// are then dropped and acknowledged.
func (s *Server) Resume(session SessionID, seq uint64) {
	t := &s.sessions
	t.mu.Lock()
	defer t.mu.Unlock()
	sess := t.get(session, time.Now())
	sess.resumed = max(sess.resumed, seq)
	if sess.open == nil {
		sess.resume()
	}
}

// resume applies Resume's number. An open connection's client may not
// have sent the frames up to it: it is applied at the next hello.
func (sess *session) resume() {
	sess.taken, sess.acked = max(sess.taken, sess.resumed), max(sess.acked, sess.resumed)
}

// begin makes c its session's connection. An older one still open is
// closed (fenced: a client has one connection at a time), and c waits
// for it to end. It returns the session's last acknowledged frame, for
// the hello.
func (t *sessions) begin(c *serverConn, id SessionID) uint64 {
	t.mu.Lock()
	sess := t.get(id, time.Now())
	old := sess.open
	if old == nil {
		t.unlink(sess)
	}
	sess.open = c
	t.mu.Unlock()
	if old != nil {
		old.fence()
		<-old.v2.gone
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	sess.resume()
	v := c.v2
	v.sess, v.base, v.last, v.flushed = sess, sess.taken, sess.taken, sess.taken
	v.deferLast, v.deferFirst = v.base, v.base
	v.handled.Store(v.base)
	v.deferred.Store(v.base)
	v.pending.Store(v.base)
	v.done.Store(v.base)
	sess.conns = append(sess.conns, c)
	acked, _ := t.advance(sess)
	return acked
}

// end records that c's reader has ended, having handed over its frames up
// to last.
func (t *sessions) end(c *serverConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v := c.v2
	sess := v.sess
	if sess == nil {
		return // it ended before its hello was accepted
	}
	v.ended, v.final = true, v.last
	sess.taken = max(sess.taken, v.last)
	if sess.open == c {
		sess.open = nil
		if t.m[sess.id] == sess {
			t.idle(sess, time.Now())
		}
	}
	t.advance(sess)
}

// advance moves the session's acknowledged number on, over its
// connections' frames in order, and returns it, and the session's open
// connection, which is to send it. mu is held.
func (t *sessions) advance(sess *session) (uint64, *serverConn) {
	for len(sess.conns) > 0 {
		v := sess.conns[0].v2
		if sess.acked < v.base {
			break // never: each connection's frames follow the previous one's
		}
		sess.acked = max(sess.acked, v.ackable())
		if !v.ended || sess.acked < v.final {
			break
		}
		n := copy(sess.conns, sess.conns[1:])
		sess.conns[n] = nil
		sess.conns = sess.conns[:n]
	}
	return sess.acked, sess.open
}

// Ack acknowledges a record deferred by Record.Defer.
type Ack struct {
	c   *serverConn
	seq uint64
}

// Defer, in the Handler, acknowledges the record at the Ack's Done, not on
// return.
func (r *Record) Defer() Ack {
	if r.conn == nil {
		return Ack{}
	}
	v := r.conn.v2 // the reader's, whose goroutine runs the Handler
	if v.done.Load() >= v.deferLast {
		v.deferFirst = r.Seq // nothing outstanding: the frames before are acknowledged
	}
	v.deferLast = r.Seq
	return Ack{r.conn, r.Seq}
}

// Done acknowledges the record and those before it, from any goroutine.
func (a Ack) Done() {
	if a.c == nil {
		return
	}
	v := a.c.v2
	for d := v.done.Load(); d < a.seq && !v.done.CompareAndSwap(d, a.seq); d = v.done.Load() {
	}
	if v.closing.Load() {
		select {
		case v.doneCh <- struct{}{}:
		default:
		}
	}
	if !v.over.Load() {
		a.c.kickAcks()
		return
	}
	// The connection has ended: the acknowledgement goes on the session's
	// open one, if any.
	t := &a.c.s.sessions
	t.mu.Lock()
	_, open := t.advance(v.sess)
	t.mu.Unlock()
	if open != nil {
		open.kickAcks()
	}
}

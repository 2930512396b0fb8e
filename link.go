package logsock

import (
	"context"
	"crypto/tls"
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// A link keeps the client's connection to the collector. It dials, and
// backs off between attempts; it writes the handshake that opens each
// connection; it peeks before writing to find a connection the collector
// has closed; it writes messages under the frame lock while the connection
// is shared with other processes; and it drops a connection whose write
// failed. Of the wire format it knows only this much: a connection opens
// with a handshake, then carries whole messages, written in units (one
// message, or a run of them) that go out whole or are reported cut after
// so many bytes, for the caller to send again, whole, on the next
// connection. The collector's forwarder can so reuse it for another
// framing.
//
// Its state is one of the linkStates. Every change of state goes through
// set, under mu, which wakes the calls in wait: from connect (to
// linkDialing, and back when the caller's time ran out) and from the
// transition methods below (up, failed, lose, shut), each in one place.
//
// The state is safe for any goroutine. The writes (usable, write,
// writeOne, greet, share) are made by one goroutine at a time: the holder of the sender's write
// role (role). Dials and waits never hold that role: they take
// a context, and abort cancels them all.
type link struct {
	network, address string
	dialer           net.Dialer
	tls              *tls.Config   // Config.TLS: nil for plain connections
	handshake        func() []byte // the handshake of a connection this process makes; nil: none
	peekInterval     time.Duration // < 0: no peek
	minBackoff       time.Duration
	maxBackoff       time.Duration
	writeTimeout     time.Duration

	// ctx is cancelled by abort, when Close's time is up: it ends every
	// dial, wait and frame-lock wait.
	ctx    context.Context
	cancel context.CancelFunc

	live atomic.Pointer[conn] // the connection while up; read without mu by the writes

	mu       sync.Mutex // guards the fields below
	state    linkState
	failures int       // connections and attempts that failed since one proved healthy
	nextDial time.Time // in linkBackoff: no attempt before this
	lastErr  error     // why the last connection or attempt failed
	everUp   bool
	changed  chan struct{} // closed and replaced at every transition

	dials sync.WaitGroup // startDial's goroutines

	// role is the write role: who holds it may write on the connection
	// (the writes below), or change it (Start, Close). The senders hold it
	// to write, and release it to dial and to wait: direct mode's caller,
	// which guards its queue with it too, and batching mode's writer.
	role sync.Mutex

	w   frameWriter // the write role's
	one [1][]byte   // writeOne's unit, as parts

	connects, reconnects atomic.Uint64
	downSince, outage    atomic.Int64 // Unix nanoseconds; downSince is 0 while up

	// Protocol v2 (Config.Acks): each connection opens with the hellos
	// (ack.go) instead of the handshake.
	v2       bool
	ackEvery time.Duration // PeekInterval: how often a write is preceded by a read of the acknowledgements
	order    ByteOrder
	session  clientSession
	floor    func() uint64 // the lowest number not acknowledged: the hello's next
	nextSeq  func() uint64 // the last number given to a frame
}

// linkState is where a link is in its life.
type linkState uint8

const (
	linkDown    linkState = iota // no connection; an attempt may be made now
	linkDialing                  // an attempt is under way, its caller holding no lock
	linkUp                       // live holds the connection
	linkBackoff                  // no connection; no attempt before nextDial
	linkClosed                   // for good: Close
)

// healthyAfter is how long a connection must have stayed up to count as
// healthy when it is lost: then the backoff is reset and the next attempt
// is made at once, as after a collector's graceful restart. A connection
// lost sooner counts as a failed attempt. The kernel's accepting a write
// proves nothing: a collector (or a proxy with no backend) that accepts
// and closes at once accepts the first writes too (issue 11: 779
// connections a second when every accepted write reset the backoff). A
// second bounds the connections that such a collector can cost to one a
// second even where the loss is seen late (an idle client sees it at its
// next write).
const healthyAfter = time.Second

var (
	// errPeerClosed is why a connection is dropped when the peek finds
	// that the collector closed it.
	errPeerClosed = errors.New("collector closed the connection")
	// connect's refusals: fixed values, since a call makes one during
	// every frame of an outage.
	errDialing = errors.New("another call is dialing")
	errBackoff = errors.New("the next attempt is not due yet")
	errUp      = errors.New("the link is up")
)

// conn is one connection and its raw handle for writing.
type conn struct {
	nc      net.Conn
	rc      syscall.RawConn
	tls     *tls.Conn  // over TLS: messages go through it, on nc (tls.go)
	tlsSock *tlsSocket // what tls reads and writes: nc
	lock    *frameLock // not nil while the connection is shared with other processes
	since   time.Time  // when it came up

	// The write role's:
	hs        []byte    // the handshake, until it is written; nil for an adopted connection
	lastCheck time.Time // the last peek
	acks      *acks     // v2's: what the collector said; nil on v1
}

// close closes the connection, and the lock file if it is shared.
func (c *conn) close() error {
	if c.lock != nil {
		c.lock.close()
	}
	if c.tls != nil {
		return c.closeTLS()
	}
	return c.nc.Close()
}

// noFrameLock turns the frame lock off, for the test that shows what it
// prevents.
var noFrameLock bool

// unixSendBuffer is the SO_SNDBUF that batching mode asks for on a Unix
// socket, whose default (212,992 bytes on Linux) is less than a batch:
// with it, the writer stops at every batch to wait for the collector to
// read, and waits longer for a processor if callers keep them busy (bench,
// 8 goroutines: 95 ns a frame against 50). The kernel caps it at
// net.core.wmem_max, and doubles it for its bookkeeping. A TCP socket's
// buffer grows by itself, up to net.ipv4.tcp_wmem.
const unixSendBuffer = 4 << 20

// newLink returns a link to the collector at address, down, or up on c
// if c is not nil (a connection adopted from another process). Each
// connection it makes opens with what handshake returns (nil: nothing).
// sendBuffer, if not 0, is the SO_SNDBUF asked for on a Unix socket. Of
// cfg it takes the timeouts, the backoff, the peek and the TCP options.
func newLink(network, address string, cfg *Config, handshake func() []byte, sendBuffer int, c *conn) *link {
	k := &link{
		network:      network,
		address:      address,
		dialer:       dialer(cfg, sendBuffer),
		tls:          clientTLS(cfg.TLS, address),
		handshake:    handshake,
		peekInterval: cfg.PeekInterval,
		minBackoff:   cfg.MinBackoff,
		maxBackoff:   cfg.MaxBackoff,
		writeTimeout: cfg.WriteTimeout,
		changed:      make(chan struct{}),
	}
	if !canPeek {
		k.peekInterval = -1 // and no clock read a frame for it
	}
	k.ctx, k.cancel = context.WithCancel(context.Background())
	k.w.init(cfg.WriteTimeout)
	if c != nil {
		c.since, c.lastCheck = time.Now(), time.Now()
		k.live.Store(c)
		k.state, k.everUp = linkUp, true
	}
	return k
}

// dialer makes the net.Dialer: TCP keepalive, and on Linux
// TCP_USER_TIMEOUT, so that a collector that vanished without a FIN is
// noticed; on a Unix socket, sendBuffer.
func dialer(cfg *Config, sendBuffer int) net.Dialer {
	d := net.Dialer{Timeout: cfg.DialTimeout}
	if cfg.KeepAlive > 0 {
		d.KeepAliveConfig = net.KeepAliveConfig{Enable: true, Idle: cfg.KeepAlive,
			Interval: max(cfg.KeepAlive/3, time.Second), Count: 3}
	} else {
		d.KeepAlive = -1
	}
	d.Control = func(network, _ string, rc syscall.RawConn) error {
		var serr error
		switch {
		case cfg.UserTimeout > 0 && (network == "tcp4" || network == "tcp6"):
			if err := rc.Control(func(fd uintptr) { serr = setUserTimeout(int(fd), cfg.UserTimeout) }); err != nil {
				return err
			}
			return os.NewSyscallError("setsockopt TCP_USER_TIMEOUT", serr)
		case sendBuffer > 0 && network == "unix":
			// Best effort: Linux caps the size silently, but the BSDs refuse
			// one above kern.ipc.maxsockbuf, and the default still works.
			return rc.Control(func(fd uintptr) { setSendBuffer(int(fd), sendBuffer) })
		}
		return nil
	}
	return d
}

// current returns the connection, or nil if the link is not up.
func (k *link) current() *conn { return k.live.Load() }

// connect returns the connection, dialing one if the link is down, or in
// backoff and the attempt is due. It does not wait: errDialing if another
// call is dialing, errBackoff if the attempt is not due, ErrClosed after
// Close. The dial is bounded by DialTimeout, ctx and abort.
func (k *link) connect(ctx context.Context) (*conn, error) {
	k.mu.Lock()
	prev, err := k.begin()
	live := k.live.Load()
	k.mu.Unlock()
	if err == errUp {
		return live, nil
	}
	if err != nil {
		return nil, err
	}
	c, err := k.dial(ctx)
	return c, k.end(ctx, prev, c, err)
}

// startDial starts, in a goroutine of the link's own, the attempt that
// connect would make, and returns at once: so that a call of direct mode
// waits for a dial that hangs only as long as its own deadline, not
// DialTimeout (issue 17: a Log took 5 s against a full backlog with
// WriteTimeout 300 ms). It reports whether it started one; the caller may
// wait for the outcome (wait). Close cancels the dial and waits for the
// goroutine (shut).
func (k *link) startDial() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	prev, err := k.begin()
	if err != nil {
		return false
	}
	k.dials.Add(1)
	go func() {
		defer k.dials.Done()
		c, err := k.dial(k.ctx)
		k.end(k.ctx, prev, c, err)
	}()
	return true
}

// dialing reports whether an attempt is under way, and the channel that
// its end will close, read together (see wait).
func (k *link) dialing() (bool, <-chan struct{}) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.state == linkDialing, k.changed
}

// begin moves the link to linkDialing for an attempt, if one is due, and
// returns the state to go back to if the attempt gets no verdict. It
// fails as connect says; with the link up, with errUp. The caller holds
// mu.
func (k *link) begin() (prev linkState, err error) {
	switch {
	case k.state == linkUp:
		return 0, errUp
	case k.state == linkClosed:
		return 0, ErrClosed
	case k.state == linkDialing:
		return 0, errDialing
	case k.state == linkBackoff && time.Now().Before(k.nextDial):
		return 0, errBackoff
	}
	prev = k.state
	k.set(linkDialing)
	return prev, nil
}

// end takes the outcome of an attempt that begin began: c, or err.
func (k *link) end(ctx context.Context, prev linkState, c *conn, err error) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	switch {
	case k.state == linkClosed: // Close ended meanwhile: it never dials again
		if c != nil {
			c.close()
		}
		return ErrClosed
	case err != nil && (ctx.Err() != nil || k.ctx.Err() != nil):
		// The caller's time ran out, or Close's, not the collector's: no
		// verdict.
		k.set(prev)
		return err
	case err != nil:
		k.failed(err)
		return err
	}
	k.up(c)
	return nil
}

func (k *link) dial(ctx context.Context) (*conn, error) {
	// Dials end when Close's time is up, as well as when ctx is done.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(k.ctx, cancel)()
	nc, err := k.dialer.DialContext(ctx, k.network, k.address)
	if err != nil {
		return nil, k.opError("dial", err)
	}
	sc, ok := nc.(syscall.Conn)
	if !ok { // net.Dialer returns *TCPConn or *UnixConn, which are
		nc.Close()
		return nil, k.opError("dial", errors.New("connection has no file descriptor"))
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		nc.Close()
		return nil, k.opError("dial", err)
	}
	c := &conn{nc: nc, rc: rc}
	if k.tls != nil {
		if err := c.startTLS(ctx, k.tls, k.dialer.Timeout); err != nil {
			nc.Close()
			return nil, k.opError("dial", err)
		}
	}
	if k.v2 {
		deadline := time.Now().Add(k.dialer.Timeout)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		if err := k.hello2(c, k.floor(), deadline); err != nil {
			c.close()
			return nil, k.opError("handshake", err)
		}
	} else if k.handshake != nil {
		c.hs = k.handshake()
	}
	return c, nil
}

// opError wraps err, the cause of a failed operation, naming the collector
// once: a *net.OpError, which names it too, gives its own cause.
func (k *link) opError(op string, err error) *OpError {
	if ne, ok := err.(*net.OpError); ok {
		err = ne.Err
	}
	return &OpError{Op: op, Net: k.network, Addr: k.address, Err: err}
}

// The transitions. The caller holds mu.

// set moves the link to state s, and wakes the calls in wait.
func (k *link) set(s linkState) {
	k.state = s
	close(k.changed)
	k.changed = make(chan struct{})
}

// up: linkDialing to linkUp, on c.
func (k *link) up(c *conn) {
	now := time.Now()
	c.since, c.lastCheck = now, now
	k.live.Store(c)
	k.connects.Add(1)
	if k.everUp {
		k.reconnects.Add(1)
	}
	k.everUp = true
	if since := k.downSince.Swap(0); since != 0 {
		k.outage.Add(now.UnixNano() - since)
	}
	k.set(linkUp)
}

// failed: linkDialing to linkBackoff, after a failed attempt. The wait
// before the next doubles with each failure, from MinBackoff up to
// MaxBackoff, and is drawn from its upper half, so that the clients of
// one collector do not retry in step.
func (k *link) failed(err error) {
	k.failures++
	k.lastErr = err
	k.downSince.CompareAndSwap(0, time.Now().UnixNano())
	k.nextDial = time.Now().Add(k.backoff(k.failures))
	k.set(linkBackoff)
}

// lose: linkUp to linkDown or linkBackoff, when c failed or the collector
// closed it. A connection that stayed up healthyAfter resets the backoff.
// The first loss since the backoff was reset (or since New) is retried at
// once; any other counts as a failure.
func (k *link) lose(c *conn, err error) {
	k.mu.Lock()
	if k.live.Load() != c { // Close has taken it
		k.mu.Unlock()
		return
	}
	k.live.Store(nil)
	k.lastErr = err
	k.downSince.CompareAndSwap(0, time.Now().UnixNano())
	if time.Since(c.since) >= healthyAfter {
		k.failures = 0
	}
	if k.failures == 0 {
		k.set(linkDown)
	} else {
		k.nextDial = time.Now().Add(k.backoff(k.failures))
		k.set(linkBackoff)
	}
	k.failures++
	k.mu.Unlock()
	c.close()
}

// shut: any state to linkClosed, for good. It returns the connection that
// was up, for the caller to close.
func (k *link) shut() *conn {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.state == linkClosed {
		return nil
	}
	c := k.live.Swap(nil)
	k.set(linkClosed)
	k.cancel()
	if since := k.downSince.Swap(0); since != 0 {
		k.outage.Add(time.Now().UnixNano() - since)
	}
	return c
}

// backoff returns the wait after n failures (n >= 1).
func (k *link) backoff(n int) time.Duration {
	b := k.maxBackoff
	// MinBackoff doubled n-1 times, while that is less: compared before
	// the shift, which would overflow (50 ms overflows at n = 39).
	if n <= 63 && k.minBackoff <= k.maxBackoff>>(n-1) {
		b = k.minBackoff << (n - 1)
	}
	half := b / 2
	return half + rand.N(half+1)
}

// wait waits for a transition after changed was taken (changes, or
// dialing), for the next attempt to fall due (in linkBackoff), for ctx to
// be done, or for a or b (either may be nil) to be closed. Taken before
// the caller looked at the link, changed ends the wait for a transition
// that came between that look and the wait, rather than missing it (a
// direct-mode Log slept 3 s and more on the next channel, with the
// connection up: stress run). The caller holds no lock that writers need.
func (k *link) wait(ctx context.Context, changed, a, b <-chan struct{}) {
	k.mu.Lock()
	var due <-chan time.Time
	if k.state == linkBackoff {
		t := time.NewTimer(time.Until(k.nextDial))
		defer t.Stop()
		due = t.C
	}
	k.mu.Unlock()
	select {
	case <-changed:
	case <-due:
	case <-ctx.Done():
	case <-k.ctx.Done():
	case <-a:
	case <-b:
	}
}

// changes returns the channel that the next transition closes.
func (k *link) changes() <-chan struct{} {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.changed
}

// lastError returns why the last connection or attempt failed.
func (k *link) lastError() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.lastErr
}

// abort is Close's, when its time is up: it cancels dials and waits, and
// closes the connection under a write blocked on a stalled collector. The
// connection stays up, closed, until shut.
func (k *link) abort() {
	k.cancel()
	if c := k.live.Load(); c != nil {
		c.nc.Close()
	}
}

// The writes: the write role's.

// usable peeks at c if PeekInterval has passed since the last peek, and
// drops c if the collector has closed it. An idle connection is so checked
// before its next write.
func (k *link) usable(c *conn) bool {
	if c.acks != nil {
		return k.usable2(c)
	}
	// time.Since reads the monotonic clock alone: half the cost of
	// time.Now, on the hot path (measured: 25 ns against 47).
	if k.peekInterval < 0 || time.Since(c.lastCheck) < k.peekInterval {
		return true
	}
	c.lastCheck = time.Now()
	if k.w.closedByPeer(c) {
		k.lose(c, k.opError("write", errPeerClosed))
		return false
	}
	return true
}

// write writes parts on c as one unit, after the handshake if it is not
// written yet, under the frame lock if c is shared, so that the other
// holders of c cannot tear it. It waits for room in the send buffer until
// deadline (the zero time: WriteTimeout from when it has to wait). It
// returns how many bytes of parts went out: all of them, or on error
// those before the cut, and the connection is lost. It may reslice the
// elements of parts.
func (k *link) write(c *conn, parts [][]byte, deadline time.Time) (int, error) {
	k.w.prepare(c.hs, parts)
	err := k.send(c, deadline)
	n := max(k.w.written-len(c.hs), 0)
	if err != nil {
		err = k.opError("write", err)
		k.lose(c, err)
		return n, err
	}
	c.hs = nil
	return n, nil
}

// writeOne is write for a unit in one buffer, which it sends as it is,
// uncopied, and without the layers of write where it can: the hot path of
// direct mode (issue 11: 0.85x of a raw write loop).
func (k *link) writeOne(c *conn, unit []byte, deadline time.Time) error {
	if c.hs != nil || c.lock != nil || c.tls != nil {
		k.one[0] = unit
		_, err := k.write(c, k.one[:], deadline)
		k.one[0] = nil
		return err
	}
	if err := k.w.sendOne(c, unit, deadline); err != nil {
		err = k.opError("write", err)
		k.lose(c, err)
		return err
	}
	return nil
}

// deadline returns the deadline that the last write waited for room
// until, or if it did not wait, WriteTimeout from now: a call that goes on
// writing after a failed write keeps one deadline for all its waits.
func (k *link) deadline() time.Time {
	if !k.w.deadline.IsZero() {
		return k.w.deadline
	}
	return time.Now().Add(k.writeTimeout)
}

// greet writes the handshake of c now, if it is not written yet: before
// another process may write on c, or to tell the collector the pid at
// once (Dial).
func (k *link) greet(c *conn, deadline time.Time) error {
	if c.hs == nil {
		return nil
	}
	k.w.prepare(c.hs, nil)
	if err := k.send(c, deadline); err != nil {
		err = k.opError("handshake", err)
		k.lose(c, err)
		return err
	}
	c.hs = nil
	return nil
}

// send writes what k.w is prepared with, on c, under the frame lock if c
// is shared.
func (k *link) send(c *conn, deadline time.Time) error {
	if c.lock == nil || noFrameLock {
		return k.w.send(c, deadline)
	}
	if deadline.IsZero() { // the lock may be waited for
		deadline = time.Now().Add(k.writeTimeout)
	}
	if err := c.lock.lock(deadline, k.ctx.Done()); err != nil {
		k.w.clear()
		return err
	}
	err := k.w.send(c, deadline)
	c.lock.unlock(err != nil && k.w.written > 0) // a cut frame tears the stream
	return err
}

// outageTime returns the time spent without a connection after a failure,
// the outage under way included.
func (k *link) outageTime() time.Duration {
	outage := k.outage.Load()
	if since := k.downSince.Load(); since != 0 {
		outage += max(time.Now().UnixNano()-since, 0)
	}
	return time.Duration(outage)
}

package logsock

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"syscall"
	"time"
)

var (
	// errPeerClosed is why a connection is dropped when the peek finds
	// that the collector closed it.
	errPeerClosed = errors.New("collector closed the connection")
	// connectNow's refusals: fixed values, since a call makes one during
	// every frame of an outage.
	errDialing = errors.New("another call is dialing")
	errBackoff = errors.New("the next attempt is not due yet")
)

// unixSendBuffer is the SO_SNDBUF that batching mode asks for on a Unix
// socket, whose default (212,992 bytes on Linux) is less than a batch:
// with it, the writer stops at every batch to wait for the collector to
// read, and waits longer for a processor if callers keep them busy (bench,
// 8 goroutines: 95 ns a frame against 50). The kernel caps it at
// net.core.wmem_max, and doubles it for its bookkeeping. A TCP socket's
// buffer grows by itself, up to net.ipv4.tcp_wmem.
const unixSendBuffer = 4 << 20

// dialer makes the net.Dialer for cfg: TCP keepalive, and on Linux
// TCP_USER_TIMEOUT, so that a collector that vanished without a FIN is
// noticed (SPEC: "Delivery"); in batching mode, a Unix socket's send
// buffer large enough for batches.
func dialer(cfg Config) net.Dialer {
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
		case cfg.Batching && network == "unix":
			// Best effort: Linux caps the size silently, but the BSDs refuse
			// one above kern.ipc.maxsockbuf, and the default still works.
			return rc.Control(func(fd uintptr) {
				syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, unixSendBuffer)
			})
		}
		return nil
	}
	return d
}

// usable peeks at c if the check is due, and drops c if the collector has
// closed it. The caller holds mu.
func (l *LogSocket) usable(c *conn, now time.Time) bool {
	if l.cfg.PeekInterval < 0 {
		return true
	}
	if now.Sub(l.lastCheck) < l.cfg.PeekInterval {
		return true
	}
	l.lastCheck = now
	if l.w.closedByPeer(c) {
		l.lose(c, errPeerClosed)
		return false
	}
	return true
}

// lose drops a connection that failed or that the collector closed, and
// starts an outage. The first attempt to reconnect may be made at once:
// backoff applies from the first failed attempt. The caller holds mu.
func (l *LogSocket) lose(c *conn, err error) {
	l.live.Store(nil)
	c.close()
	l.lastErr = err
	l.hsDue = false
	l.downSince.CompareAndSwap(0, time.Now().UnixNano())
	if l.backoff == 0 {
		l.nextDial = time.Time{}
	}
	l.broadcast()
}

// hold adds msg to the held frames, applying the overflow policy. The
// caller holds mu.
func (l *LogSocket) hold(msg []byte, deadline time.Time) error {
	if HeaderLen+len(msg) > l.held.limit { // it would never fit
		l.dropped.Add(1)
		return ErrBufferFull
	}
	if !l.held.fits(len(msg)) {
		switch l.cfg.Overflow {
		case DropOldest:
			for !l.held.fits(len(msg)) && !l.held.empty() {
				l.held.dropOldest()
				l.dropped.Add(1)
			}
			if !l.held.fits(len(msg)) { // the rest is a batch being written
				l.dropped.Add(1)
				return ErrBufferFull
			}
		case DropNewest:
			l.dropped.Add(1)
			return ErrBufferFull
		default:
			if err := l.waitForRoom(len(msg), deadline); err != nil {
				if !errors.Is(err, ErrClosed) {
					l.dropped.Add(1)
				}
				return err
			}
		}
	}
	l.held.push(msg)
	l.noteHeld()
	return nil
}

// waitForRoom waits until deadline, without holding mu while it waits,
// for the held frames to leave room for a message of n bytes. It tries to
// deliver them whenever a connection attempt is due.
func (l *LogSocket) waitForRoom(n int, deadline time.Time) error {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	for !l.held.fits(n) {
		if l.closed.Load() {
			return ErrClosed
		}
		l.deliver(ctx, deadline)
		if l.held.fits(n) {
			break
		}
		if ctx.Err() != nil {
			return ErrBufferFull
		}
		l.wait(ctx, !l.cfg.Batching)
	}
	return nil
}

// deliver writes the held frames if there is a connection, or if an
// attempt to make one is due; a write waits for room until deadline. It
// never waits for a backoff; what it cannot write stays held. The caller
// holds mu.
func (l *LogSocket) deliver(ctx context.Context, deadline time.Time) {
	if l.cfg.Batching && !l.closing {
		signal(l.urge) // the writer delivers
		return
	}
	for !l.held.empty() {
		c := l.live.Load()
		if c == nil {
			if l.connectNow(ctx) != nil {
				return
			}
			continue // the state may have changed while mu was released
		}
		if !l.flushHeld(c, deadline) {
			return // the next attempt waits for the backoff
		}
	}
}

// flushHeld writes the held frames on c, after a pending handshake, and
// reports whether all went out. Frames written whole leave the queue; one
// cut by a failure stays, whole. The caller holds mu.
func (l *LogSocket) flushHeld(c *conn, deadline time.Time) bool {
	var hs []byte
	if l.hsDue {
		hs = l.hs[:]
	}
	retry := l.held.retry
	err := l.writeOn(c, hs, l.held.bytes(), false, deadline)
	frames, msgBytes := l.held.consume(l.w.written - len(hs))
	l.afterWrite(c, frames, msgBytes, retry, err)
	l.noteHeld()
	if err != nil {
		l.held.retry = true // the first frame left was cut, or never went out
		return false
	}
	l.held.shrink()
	l.broadcast()
	return true
}

// afterWrite accounts for a write of queued frames: it counts the frames
// that went out whole (one of them re-sent, if the first had been tried
// before), and on failure drops the connection and schedules the next
// attempt. The caller holds mu.
func (l *LogSocket) afterWrite(c *conn, frames, msgBytes int, retried bool, err error) {
	l.frames.Add(uint64(frames))
	l.bytes.Add(uint64(msgBytes))
	if retried && frames > 0 {
		l.resent.Add(1)
	}
	if err != nil {
		l.fail()
		l.lose(c, err)
		return
	}
	l.hsDue = false
	l.backoff = 0 // delivered: the collector is healthy again
}

// connectNow dials if no other call is dialing and the backoff allows, with
// mu released during the dial. On success the new connection is live, its
// handshake due. The caller holds mu.
func (l *LogSocket) connectNow(ctx context.Context) error {
	if l.dialing {
		return errDialing
	}
	if time.Now().Before(l.nextDial) {
		return errBackoff
	}
	l.dialing = true
	l.mu.Unlock()
	c, err := l.dial(ctx)
	l.mu.Lock()
	l.dialing = false
	l.broadcast()
	switch {
	case err != nil:
		l.lastErr = err
		l.downSince.CompareAndSwap(0, time.Now().UnixNano())
		l.fail()
		return err
	case l.finished:
		c.close()
		return ErrClosed
	}
	l.live.Store(c)
	PutHandshake(l.hs[:], l.cfg.Order, int32(os.Getpid()))
	l.hsDue = true
	l.lastCheck = time.Now()
	if l.everUp {
		l.reconnects.Add(1)
	}
	l.everUp = true
	l.connects.Add(1)
	if since := l.downSince.Swap(0); since != 0 {
		l.outage.Add(time.Now().UnixNano() - since)
	}
	return nil
}

// fail schedules the next attempt after a failed dial or write: the
// backoff doubles up to MaxBackoff, and the wait is drawn from its upper
// half, so that many clients of one collector do not retry in step.
func (l *LogSocket) fail() {
	l.backoff = min(max(2*l.backoff, l.cfg.MinBackoff), l.cfg.MaxBackoff)
	half := l.backoff / 2
	l.nextDial = time.Now().Add(half + rand.N(half+1))
}

func (l *LogSocket) dial(ctx context.Context) (*conn, error) {
	nc, err := l.dialer.DialContext(ctx, l.network, l.address)
	if err != nil {
		return nil, &OpError{Op: "dial", Net: l.network, Addr: l.address, Err: err}
	}
	sc, ok := nc.(syscall.Conn)
	if !ok { // net.Dialer returns *TCPConn or *UnixConn, which are
		nc.Close()
		return nil, &OpError{Op: "dial", Net: l.network, Addr: l.address, Err: errors.New("connection has no file descriptor")}
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		nc.Close()
		return nil, &OpError{Op: "dial", Net: l.network, Addr: l.address, Err: err}
	}
	return &conn{nc: nc, rc: rc}, nil
}

// wait releases mu until the state changes, ctx is done or Close begins,
// and if untilDial, until the next connection attempt is due; then it
// takes mu again.
func (l *LogSocket) wait(ctx context.Context, untilDial bool) {
	changed, done := l.changed, l.done
	if l.closing {
		done = nil // Close's own flush waits for its deadline, in ctx
	}
	var timer <-chan time.Time
	if untilDial && !l.dialing {
		t := time.NewTimer(max(time.Until(l.nextDial), 0))
		defer t.Stop()
		timer = t.C
	}
	l.mu.Unlock()
	select {
	case <-changed:
	case <-timer:
	case <-ctx.Done():
	case <-done:
	}
	l.mu.Lock()
}

// broadcast wakes the calls in wait. The caller holds mu.
func (l *LogSocket) broadcast() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// noteHeld publishes the size of the queue for Stats, which must not wait
// for a write in direct mode. In batching mode no write holds mu, so Stats
// reads the queue itself, and queueing a frame costs no atomic stores. The
// caller holds mu.
func (l *LogSocket) noteHeld() {
	if l.cfg.Batching {
		return
	}
	l.heldFrames.Store(int64(l.held.frames))
	l.heldBytes.Store(int64(l.held.len()))
}

// Flush writes every held frame, connecting as needed, and returns nil
// when none is left; or the context's error, wrapped with ErrUndelivered,
// when ctx is done first. Frames stay held after a failed Flush.
func (l *LogSocket) Flush(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return ErrClosed
	}
	if l.cfg.Batching {
		return l.flushBatches(ctx)
	}
	return l.flushLocked(ctx)
}

// undelivered is the error of a flush that ctx ended with frames held.
// The caller holds mu.
func (l *LogSocket) undelivered(err error) error {
	staged, _ := l.stagePending()
	return fmt.Errorf("%w: %d frames held (last error: %v): %w", ErrUndelivered, l.held.frames+staged, l.lastErr, err)
}

func (l *LogSocket) flushLocked(ctx context.Context) error {
	for {
		deadline, ok := ctx.Deadline()
		if !ok {
			deadline = time.Now().Add(l.cfg.WriteTimeout)
		}
		l.deliver(ctx, deadline)
		if l.held.empty() {
			return nil
		}
		if ctx.Err() != nil {
			return l.undelivered(ctx.Err())
		}
		l.wait(ctx, true)
		if l.closed.Load() && !l.closing {
			return ErrClosed // Close has begun; its own flush takes over
		}
	}
}

// Close delivers the frames still held, for up to CloseTimeout, then closes
// the connection. Calls waiting in Log, Write or Flush return at once; a
// write in progress is given until CloseTimeout, then its connection is
// closed under it. Frames not delivered by then are dropped and counted,
// and Close returns an error wrapping ErrUndelivered. Every later call
// returns ErrClosed; a closed LogSocket never dials again. Close is
// idempotent: later calls return nil.
func (l *LogSocket) Close() error {
	if l.closed.Swap(true) {
		return nil
	}
	close(l.done)
	deadline := time.Now().Add(l.cfg.CloseTimeout)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	// A write blocked on a stalled collector holds mu: closing its
	// connection at the deadline is what bounds Close.
	aborted := make(chan struct{})
	force := time.AfterFunc(l.cfg.CloseTimeout, func() { l.abort(); close(aborted) })
	defer func() {
		if !force.Stop() {
			<-aborted
		}
	}()
	if l.cfg.Batching {
		<-l.writerDone // it ends its batch in flight: then this flush goes on
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	l.closing = true
	l.drainStage() // every frame in the queue, in order, for the flush
	err := l.flushLocked(ctx)
	if n := l.held.frames; n > 0 {
		l.dropped.Add(uint64(n))
		l.held.reset()
		l.noteHeld()
	}
	l.finished = true
	if c := l.live.Load(); c != nil {
		l.live.Store(nil)
		if cerr := c.close(); err == nil && !errors.Is(cerr, net.ErrClosed) { // abort may have closed it
			err = cerr
		}
	}
	if since := l.downSince.Swap(0); since != 0 {
		l.outage.Add(time.Now().UnixNano() - since)
	}
	return err
}

// abort closes the live connection without mu, unblocking a write in
// progress.
func (l *LogSocket) abort() {
	if c := l.live.Load(); c != nil {
		c.nc.Close()
	}
}

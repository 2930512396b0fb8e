package logsock

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// Defaults for the zero values of Config.
const (
	DefaultDialTimeout  = 5 * time.Second
	DefaultWriteTimeout = 5 * time.Second
	DefaultCloseTimeout = 5 * time.Second
	DefaultMinBackoff   = 50 * time.Millisecond
	DefaultMaxBackoff   = 5 * time.Second
	DefaultBufferBytes  = 4 << 20
	DefaultPeekInterval = 10 * time.Millisecond
	DefaultKeepAlive    = 15 * time.Second
	DefaultUserTimeout  = 20 * time.Second
	DefaultFlushDelay   = 10 * time.Millisecond
)

var (
	// ErrClosed is returned by calls on a LogSocket after Close.
	ErrClosed = errors.New("logsock: LogSocket closed")
	// ErrBufferFull is returned for a frame dropped because the buffer of
	// held frames was full (see Overflow). The drop is counted in Stats.
	ErrBufferFull = errors.New("logsock: buffer full, frame dropped")
	// ErrUndelivered is wrapped by the error of Close (or Flush) when held
	// frames could not be delivered in time.
	ErrUndelivered = errors.New("logsock: frames undelivered")
)

// Overflow is what a call does with its frame when the buffer of held
// frames is full.
type Overflow uint8

const (
	// Block waits up to WriteTimeout for room, then drops the frame and
	// returns ErrBufferFull. It is the default.
	Block Overflow = iota
	// DropNewest drops the new frame at once and returns ErrBufferFull.
	DropNewest
	// DropOldest drops the oldest held frames to make room; the call
	// returns nil. (In batching mode, if the room is taken by the batch
	// being written, the new frame is dropped, with ErrBufferFull.)
	DropOldest
)

// Config configures a LogSocket. A nil *Config, and the zero value of each
// field, mean the defaults. A negative duration turns off what it times,
// where the field says so.
type Config struct {
	// Order is the byte order of the handshake and frame headers; it must
	// match the collector's. The zero value is LittleEndian.
	Order ByteOrder
	// MaxFrame is the longest message, in bytes, that Log and Write send;
	// a longer one is refused with ErrFrameTooLarge, never truncated. Keep
	// it at or below the collector's limit. Zero means DefaultMaxFrame.
	MaxFrame int
	// DialTimeout bounds each connection attempt. Zero means
	// DefaultDialTimeout.
	DialTimeout time.Duration
	// WriteTimeout bounds how long one call waits: for room in the
	// socket's send buffer, and, under the Block policy, for room in the
	// buffer of held frames. A frame that times out half-written is held
	// and sent again whole on a new connection. Zero means
	// DefaultWriteTimeout.
	WriteTimeout time.Duration

	// MinBackoff and MaxBackoff bound the wait between connection
	// attempts: it starts at MinBackoff, doubles after each failure up to
	// MaxBackoff, and each wait is drawn at random from its upper half.
	// The first attempt after a connection is lost is immediate. Zero means
	// DefaultMinBackoff and DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// BufferBytes bounds the frames held, headers included, while the
	// collector is unreachable, and in batching mode also those waiting
	// for the writer. A frame too large ever to fit is dropped, and
	// counted, when it would have to be held. Zero means
	// DefaultBufferBytes, or MaxFrame+HeaderLen if that is larger.
	//
	// In batching mode, frames gather in chunks of 64 KiB (a quarter of
	// BufferBytes if that is less; none below 16 KiB), and a chunk in use
	// counts whole: Block may wait while up to one chunk of BufferBytes is
	// unused. DropNewest and DropOldest count frame by frame.
	BufferBytes int
	// Overflow says what to do when BufferBytes is reached: Block (the
	// default), DropNewest or DropOldest.
	Overflow Overflow
	// PeekInterval: before a write, if at least this long has passed since
	// the last check, a non-blocking peek checks that the collector has
	// not closed the connection, so that a frame is not written into a
	// dead one. An idle connection is checked before its next frame, so a
	// collector that closes while the client is idle costs nothing. Under
	// load, the frame written between the collector's close and the next
	// check goes into the dead connection and is lost (TCP; a Unix socket
	// fails that write at once, and the frame is sent again): a tiny
	// interval (time.Nanosecond) checks before every frame and closes that
	// window too, for one more syscall a frame. Zero means
	// DefaultPeekInterval; a negative value turns the check off.
	PeekInterval time.Duration
	// CloseTimeout bounds how long Close tries to deliver the frames
	// still held. Zero means DefaultCloseTimeout.
	CloseTimeout time.Duration
	// KeepAlive is the idle time before TCP keepalive probes, which detect
	// a collector that vanished without closing (host down, network lost).
	// Zero means DefaultKeepAlive; negative turns keepalive off.
	KeepAlive time.Duration
	// Batching turns on batching mode. Log and Write then only append the
	// frame to the buffer (BufferBytes, Overflow) and return, without a
	// lock in the common case, so that callers on different cores do not
	// wait for each other; a goroutine of
	// the LogSocket writes the frames of all callers together, many in one
	// write, and while one write is in flight the next batch gathers. A
	// batch goes out FlushDelay after its first frame, at once when it
	// reaches 256 KiB, on Flush, and on Close, which stops the goroutine.
	// Frames stay whole, each caller's in order; on a shared connection a
	// batch is written under the frame lock as one unit.
	Batching bool
	// FlushDelay is how long a batch gathers at most. Zero means
	// DefaultFlushDelay.
	FlushDelay time.Duration

	// UserTimeout is TCP_USER_TIMEOUT on Linux: how long written data may
	// stay unacknowledged before the connection is declared dead. The
	// frames still in a dead connection's send buffer (up to the kernel's
	// tcp_wmem, megabytes) are lost with it, so a short timeout trades loss
	// for faster detection: a collector stopped for longer than it loses
	// them, while WriteTimeout alone moves on to a new connection and
	// leaves them to be read when the collector resumes. Zero means
	// DefaultUserTimeout; negative leaves the system's default.
	UserTimeout time.Duration
}

func (c *Config) withDefaults() (Config, error) {
	var cfg Config
	if c != nil {
		cfg = *c
	}
	if cfg.Order > BigEndian {
		return cfg, fmt.Errorf("logsock: unknown byte order %d", cfg.Order)
	}
	if cfg.Overflow > DropOldest {
		return cfg, fmt.Errorf("logsock: unknown overflow policy %d", cfg.Overflow)
	}
	if cfg.BufferBytes < 0 {
		return cfg, fmt.Errorf("logsock: negative BufferBytes %d", cfg.BufferBytes)
	}
	if cfg.MaxFrame < 0 || cfg.MaxFrame > math.MaxInt32-HeaderLen {
		return cfg, fmt.Errorf("logsock: MaxFrame %d outside [0, %d]", cfg.MaxFrame, math.MaxInt32-HeaderLen)
	}
	if cfg.DialTimeout < 0 || cfg.WriteTimeout < 0 || cfg.CloseTimeout < 0 || cfg.MinBackoff < 0 || cfg.MaxBackoff < 0 || cfg.FlushDelay < 0 {
		return cfg, errors.New("logsock: negative timeout or backoff")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.DialTimeout, DefaultDialTimeout)
	def(&cfg.WriteTimeout, DefaultWriteTimeout)
	def(&cfg.CloseTimeout, DefaultCloseTimeout)
	def(&cfg.MinBackoff, DefaultMinBackoff)
	def(&cfg.MaxBackoff, DefaultMaxBackoff)
	def(&cfg.PeekInterval, DefaultPeekInterval)
	def(&cfg.KeepAlive, DefaultKeepAlive)
	def(&cfg.UserTimeout, DefaultUserTimeout)
	def(&cfg.FlushDelay, DefaultFlushDelay)
	if cfg.MaxBackoff < cfg.MinBackoff {
		return cfg, fmt.Errorf("logsock: MaxBackoff %v below MinBackoff %v", cfg.MaxBackoff, cfg.MinBackoff)
	}
	if cfg.MaxFrame == 0 {
		cfg.MaxFrame = DefaultMaxFrame
	}
	if cfg.BufferBytes == 0 {
		cfg.BufferBytes = max(DefaultBufferBytes, cfg.MaxFrame+HeaderLen)
	}
	if cfg.BufferBytes < HeaderLen {
		return cfg, fmt.Errorf("logsock: BufferBytes %d cannot hold a frame", cfg.BufferBytes)
	}
	return cfg, nil
}

// OpError is the error of a failed dial, handshake or write.
type OpError struct {
	Op   string // "dial", "handshake" or "write"
	Net  string // the network, as given to Dial or New
	Addr string // the collector's address
	Err  error
}

func (e *OpError) Error() string {
	return fmt.Sprintf("logsock: %s %s %s: %v", e.Op, e.Net, e.Addr, e.Err)
}

// Unwrap returns e.Err.
func (e *OpError) Unwrap() error { return e.Err }

// Stats are a LogSocket's counters since it was made.
type Stats struct {
	Frames     uint64        // frames written whole to a connection
	Writes     uint64        // writes that succeeded: one a frame in direct mode, one a batch in batching mode
	Bytes      uint64        // message bytes in those frames (headers not counted)
	Errors     uint64        // Log and Write calls that returned an error
	Connects   uint64        // connections opened, each with its own handshake
	Reconnects uint64        // connections opened after one was lost
	Resent     uint64        // frames written again, whole, after their write failed
	Dropped    uint64        // frames dropped: buffer full, or undelivered at Close
	Held       int           // frames held now, waiting for the collector
	HeldBytes  int           // bytes held now, headers included
	Outage     time.Duration // time spent without a connection after a failure
}

// A LogSocket sends log messages to a collector, one frame each, over one
// stream connection that opens with the handshake. It is safe for use by
// any number of goroutines: each frame goes out whole, in one write or
// within a batch, never interleaved with another, and each goroutine's
// frames in order.
//
// When the connection fails, or the collector closes it, the LogSocket
// connects again, with backoff, and sends a fresh handshake with the pid of
// the process now writing. Frames that could not be written meanwhile,
// including the one whose write failed, are held in a buffer bounded by
// Config.BufferBytes and sent, whole and in order, on the new connection.
// In direct mode the LogSocket starts no goroutine: held frames go out
// during later calls of Log, Write, Flush or Close. In batching mode its
// writer goroutine sends them, and Close stops it.
type LogSocket struct {
	network, address string
	cfg              Config
	dialer           net.Dialer

	closed     atomic.Bool
	done       chan struct{}         // closed by Close: wakes waiting calls, stops the writer
	wake, urge chan struct{}         // batching mode: a frame is queued; a batch is due now
	writerDone chan struct{}         // batching mode: closed when the writer has stopped
	live       atomic.Pointer[conn]  // set under mu; read without it by Close's abort
	cur        atomic.Pointer[chunk] // batching mode: the chunk Log appends to without mu (stage.go); set under mu
	chunkLen   int                   // batching mode: the size of a chunk; 0: no chunks, frames go to held

	mu          sync.Mutex // guards the fields below; never held while sleeping or dialing
	w           frameWriter
	hs          [HeaderLen]byte // the handshake of the current connection
	hsDue       bool            // hs has not been written yet: it goes out with the next write
	held        frameQueue
	dialing     bool          // a call is dialing, with mu released
	closing     bool          // Close is flushing
	writing     bool          // batching mode: the writer is writing a batch, with mu released
	spare       []byte        // batching mode: the memory of the last batch, for the next
	sealed      []*chunk      // batching mode: chunks to write, in order, after held
	sealedBytes int           // bytes in sealed
	free        []*chunk      // batching mode: chunks written, to reuse
	inflight    []*chunk      // batching mode: the chunks of the batch being written
	parts       [][]byte      // batching mode: the batch being written, for sendmsg
	finished    bool          // Close is done: a dial that ends now is discarded
	everUp      bool          // a connection has been made once
	backoff     time.Duration // the current wait between attempts; 0 while healthy
	nextDial    time.Time     // no attempt before this
	lastErr     error         // why the last connection or attempt failed
	lastCheck   time.Time     // the last peek at the connection
	changed     chan struct{} // closed and replaced when a connection comes up, a dial ends or room frees

	frames, writes, bytes, errs, connects, reconnects, resent, dropped atomic.Uint64
	heldFrames, heldBytes                                              atomic.Int64
	downSince, outage                                                  atomic.Int64 // Unix nanoseconds; 0 while up
}

// conn is one connection and its raw handle for writing.
type conn struct {
	nc   net.Conn
	rc   syscall.RawConn
	lock *frameLock // not nil while the connection is shared with other processes
}

// close closes the connection, and the lock file if it is shared.
func (c *conn) close() error {
	if c.lock != nil {
		c.lock.close()
	}
	return c.nc.Close()
}

// noFrameLock turns the frame lock off, for the test that shows what it
// prevents.
var noFrameLock bool

// writeOn writes hs and msg as frameWriter.prepare and send do, on c,
// under the lock shared with other processes when c is shared: so a frame,
// or a run of held frames, goes out as one unit that the other holders
// cannot tear.
func (l *LogSocket) writeOn(c *conn, hs, msg []byte, frame bool, deadline time.Time) error {
	l.w.prepare(hs, msg, frame)
	return l.sendOn(c, deadline)
}

// writePartsOn is writeOn for a batch of parts, written as one unit.
func (l *LogSocket) writePartsOn(c *conn, parts [][]byte, deadline time.Time) error {
	l.w.prepareParts(parts)
	return l.sendOn(c, deadline)
}

// sendOn writes what l.w is prepared with, as writeOn describes.
func (l *LogSocket) sendOn(c *conn, deadline time.Time) error {
	var err error
	if c.lock == nil || noFrameLock {
		err = l.w.send(c, deadline)
	} else if err = c.lock.lock(deadline); err != nil {
		l.w.written = 0
		l.w.clear()
	} else {
		err = l.w.send(c, deadline)
		c.lock.unlock(err != nil && l.w.written > 0) // a cut frame tears the stream
	}
	if err == nil {
		l.writes.Add(1)
	}
	return err
}

// New returns a LogSocket that connects when the first message is sent, so
// that a program can start while the collector is down: until it is up,
// messages are held. The network is "tcp", "tcp4", "tcp6" or "unix". A nil
// cfg means defaults.
func New(network, address string, cfg *Config) (*LogSocket, error) {
	switch network {
	case "tcp", "tcp4", "tcp6", "unix":
	default:
		return nil, fmt.Errorf("logsock: network %q: want tcp, tcp4, tcp6 or unix", network)
	}
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	l := &LogSocket{network: network, address: address, cfg: c, done: make(chan struct{}), changed: make(chan struct{})}
	l.dialer = dialer(c)
	l.w.init(c.Order)
	l.held = frameQueue{order: c.Order, limit: c.BufferBytes}
	if c.Batching {
		l.chunkLen = chunkSize(c.BufferBytes)
		if l.chunkLen == 0 {
			l.held.minCap = batchBytes
		}
		l.wake, l.urge, l.writerDone = make(chan struct{}, 1), make(chan struct{}, 1), make(chan struct{})
		go l.runWriter()
	}
	return l, nil
}

// Dial connects to the collector at address and sends the handshake. It
// fails if the collector cannot be reached: use New to start without one.
func Dial(network, address string, cfg *Config) (*LogSocket, error) {
	return DialContext(context.Background(), network, address, cfg)
}

// DialContext is Dial with a context that bounds the connection attempt.
func DialContext(ctx context.Context, network, address string, cfg *Config) (*LogSocket, error) {
	l, err := New(network, address, cfg)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	err = l.connectNow(ctx)
	if err == nil {
		// Send the handshake now, so that the collector learns the pid
		// before the first message.
		c := l.live.Load()
		if werr := l.writeOn(c, l.hs[:], nil, false, time.Now().Add(l.cfg.DialTimeout)); werr != nil {
			err = &OpError{Op: "handshake", Net: network, Addr: address, Err: werr}
		}
		l.hsDue = false
	}
	l.mu.Unlock()
	if err != nil {
		l.Close() // and stop the writer of batching mode
		return nil, err
	}
	return l, nil
}

// Log sends msg as one frame. A nil error means that the whole frame was
// written to the connection (accepted by the kernel, not acknowledged by
// the collector), or that it is held, to be sent whole on a later
// connection, because the collector is unreachable now. An error means
// the frame will not be sent: ErrFrameTooLarge, ErrBufferFull (counted in
// Stats.Dropped) or ErrClosed.
func (l *LogSocket) Log(msg string) error {
	return l.send(unsafe.Slice(unsafe.StringData(msg), len(msg)))
}

// Write sends p as one frame, so that each call of a log.Logger or of a
// slog handler is one record. It returns len(p) where Log returns nil.
// Write does not retain p.
func (l *LogSocket) Write(p []byte) (int, error) {
	if err := l.send(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Stats returns the counters. In direct mode it does not wait for calls in
// progress; in batching mode it takes the LogSocket's lock briefly, to read
// the queue (no write holds that lock there).
func (l *LogSocket) Stats() Stats {
	outage := l.outage.Load()
	if since := l.downSince.Load(); since != 0 {
		outage += max(time.Now().UnixNano()-since, 0)
	}
	held, heldBytes := int(l.heldFrames.Load()), int(l.heldBytes.Load())
	if l.cfg.Batching {
		l.mu.Lock()
		held, heldBytes = l.stagePending()
		held += l.held.frames
		heldBytes += l.held.len()
		l.mu.Unlock()
	}
	return Stats{
		Frames:     l.frames.Load(),
		Writes:     l.writes.Load(),
		Bytes:      l.bytes.Load(),
		Errors:     l.errs.Load(),
		Connects:   l.connects.Load(),
		Reconnects: l.reconnects.Load(),
		Resent:     l.resent.Load(),
		Dropped:    l.dropped.Load(),
		Held:       held,
		HeldBytes:  heldBytes,
		Outage:     time.Duration(outage),
	}
}

func (l *LogSocket) send(msg []byte) error {
	if len(msg) > l.cfg.MaxFrame {
		l.errs.Add(1)
		return fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, len(msg), l.cfg.MaxFrame)
	}
	if l.cfg.Batching && !l.closed.Load() && l.tryStage(msg) {
		return nil // the hot path of batching mode: no lock
	}
	l.mu.Lock()
	var err error
	if l.cfg.Batching {
		err = l.queueLocked(msg)
	} else {
		err = l.sendLocked(msg)
	}
	l.mu.Unlock()
	if err != nil {
		l.errs.Add(1)
	}
	return err
}

func (l *LogSocket) sendLocked(msg []byte) error {
	if l.closed.Load() {
		return ErrClosed
	}
	// One deadline for all the waiting this call does for room.
	now := time.Now()
	deadline := now.Add(l.cfg.WriteTimeout)
	// The hot path: a live connection and nothing held before this frame.
	if c := l.live.Load(); c != nil && l.held.empty() && l.usable(c, now) {
		var hs []byte
		if l.hsDue {
			hs = l.hs[:]
		}
		err := l.writeOn(c, hs, msg, true, deadline)
		if err == nil {
			l.hsDue = false
			l.frames.Add(1)
			l.bytes.Add(uint64(len(msg)))
			return nil
		}
		// Whatever part of the frame went out, the stream may be torn:
		// the frame is held whole, for a new connection.
		l.lose(c, err)
		if err := l.hold(msg, deadline); err != nil {
			return err
		}
		l.held.retry = true
		l.deliver(context.Background(), deadline)
		return nil
	}
	if err := l.hold(msg, deadline); err != nil {
		return err
	}
	l.deliver(context.Background(), deadline)
	return nil
}

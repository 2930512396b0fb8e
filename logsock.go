package logsock

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/cpu"
)

// The defaults of Config's zero values.
const (
	defaultDialTimeout  = 5 * time.Second
	defaultWriteTimeout = 5 * time.Second
	defaultCloseTimeout = 5 * time.Second
	defaultMinBackoff   = 50 * time.Millisecond
	defaultMaxBackoff   = 5 * time.Second
	defaultBufferBytes  = 4 << 20
	defaultPeekInterval = 10 * time.Millisecond
	defaultKeepAlive    = 15 * time.Second
	defaultUserTimeout  = 20 * time.Second
	defaultFlushDelay   = 10 * time.Millisecond
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
// frames is full. Each policy acts the same in direct and in batching
// mode, and none keeps the LogSocket from reconnecting: the frames held
// go out as soon as a connection is made.
type Overflow uint8

const (
	// Block waits up to WriteTimeout for room, then drops the frame and
	// returns ErrBufferFull. It is the default.
	Block Overflow = iota
	// DropNewest drops the new frame at once and returns ErrBufferFull.
	DropNewest
	// DropOldest drops the oldest held frames to make room; the call
	// returns nil. Frames already being written are not dropped: if they
	// take the room, the new frame is dropped, with ErrBufferFull.
	DropOldest
)

// Config configures a LogSocket. A nil *Config, and the zero value of each
// field, mean the defaults given.
type Config struct {
	// Order is the byte order of the wire's integers, the collector's.
	Order ByteOrder
	// MaxFrame is the longest message that Log sends, in bytes; a longer one
	// is refused (ErrFrameTooLarge), never cut. Keep it within the
	// collector's limit. Default DefaultMaxFrame.
	MaxFrame int
	// DialTimeout bounds each connection attempt, TLS's handshake included.
	// Default 5 s.
	DialTimeout time.Duration
	// WriteTimeout bounds how long one call waits for the collector: for
	// a dial, for room in the socket's send buffer, for the frame lock of a
	// shared connection, and under Block for room in the buffer. Default 5 s.
	WriteTimeout time.Duration
	// CloseTimeout bounds how long Close tries to deliver what is held.
	// Default 5 s.
	CloseTimeout time.Duration

	// MinBackoff and MaxBackoff bound the wait between connection attempts:
	// it doubles after each failure, drawn at random from its upper half. A
	// connection that stayed up a second resets it; one lost sooner counts
	// as a failure, so that a collector that accepts and closes at once gets
	// a connection every few seconds. Default 50 ms and 5 s (or MinBackoff).
	MinBackoff, MaxBackoff time.Duration
	// BufferBytes bounds the frames held, headers included: while the
	// collector is unreachable, and in batching mode until the writer takes
	// them. Their memory may reach a quarter more. Default 4 MiB, or
	// MaxFrame and a header if more.
	BufferBytes int
	// Overflow is what a call does when BufferBytes is reached.
	Overflow Overflow
	// PeekInterval is how long a connection may go without a check that the
	// collector has not closed it, made before a write (a non-blocking
	// peek). time.Nanosecond checks before every frame; negative, never.
	// Windows has no such peek. Default 10 ms.
	PeekInterval time.Duration

	// Batching makes Log only queue the frame, most often without a lock,
	// for a goroutine that writes the frames of all callers in batches: a
	// batch goes out FlushDelay after its first frame, at 256 KiB, on Flush
	// and on Close.
	Batching bool
	// FlushDelay is how long a batch gathers at most, in batching mode only.
	// Default 10 ms.
	FlushDelay time.Duration

	// TLS, if not nil, makes each connection a TLS client connection over
	// TCP, to logsockd -listen tls:// or to a syslog server (NewSyslog: RFC
	// 5425). A TLS connection cannot be shared with another process.
	TLS *tls.Config
	// KeepAlive is the idle time before TCP keepalive probes, which find a
	// collector that vanished. Default 15 s; negative turns them off.
	KeepAlive time.Duration
	// UserTimeout is TCP_USER_TIMEOUT, on Linux: how long written data may
	// stay unacknowledged before the connection is dropped, with what its
	// send buffer holds. Default 20 s; negative leaves the system's.
	UserTimeout time.Duration
}

func (c *Config) withDefaults() (Config, error) {
	var cfg Config
	if c != nil {
		cfg = *c
	}
	bad := func(field string, value any, why string) (Config, error) {
		return cfg, fmt.Errorf("logsock: Config.%s %v: %s", field, value, why)
	}
	switch {
	case cfg.Order > BigEndian:
		return bad("Order", uint8(cfg.Order), "want LittleEndian or BigEndian")
	case cfg.Overflow > DropOldest:
		return bad("Overflow", uint8(cfg.Overflow), "want Block, DropNewest or DropOldest")
	case cfg.BufferBytes < 0:
		return bad("BufferBytes", cfg.BufferBytes, "negative")
	case cfg.MaxFrame < 0 || cfg.MaxFrame > math.MaxInt32-maxHeader:
		return bad("MaxFrame", cfg.MaxFrame, fmt.Sprintf("outside [0, %d]", math.MaxInt32-maxHeader))
	case cfg.FlushDelay != 0 && !cfg.Batching:
		return bad("FlushDelay", cfg.FlushDelay, "batching mode's: set Batching too")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"DialTimeout", cfg.DialTimeout}, {"WriteTimeout", cfg.WriteTimeout}, {"CloseTimeout", cfg.CloseTimeout},
		{"MinBackoff", cfg.MinBackoff}, {"MaxBackoff", cfg.MaxBackoff}, {"FlushDelay", cfg.FlushDelay}} {
		if d.v < 0 {
			return bad(d.name, d.v, "negative")
		}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.DialTimeout, defaultDialTimeout)
	def(&cfg.WriteTimeout, defaultWriteTimeout)
	def(&cfg.CloseTimeout, defaultCloseTimeout)
	def(&cfg.MinBackoff, defaultMinBackoff)
	// A MaxBackoff left at zero follows MinBackoff, where that is larger
	// than the default.
	def(&cfg.MaxBackoff, max(defaultMaxBackoff, cfg.MinBackoff))
	def(&cfg.PeekInterval, defaultPeekInterval)
	def(&cfg.KeepAlive, defaultKeepAlive)
	def(&cfg.UserTimeout, defaultUserTimeout)
	def(&cfg.FlushDelay, defaultFlushDelay)
	if cfg.TLS != nil {
		cfg.TLS = cfg.TLS.Clone() // the caller's stays theirs, and ServerName is set on ours
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		return bad("MaxBackoff", cfg.MaxBackoff, fmt.Sprintf("below MinBackoff %v", cfg.MinBackoff))
	}
	if cfg.MaxFrame == 0 {
		cfg.MaxFrame = DefaultMaxFrame
	}
	if cfg.BufferBytes == 0 {
		cfg.BufferBytes = max(defaultBufferBytes, cfg.MaxFrame+maxHeader)
	}
	if cfg.BufferBytes < HeaderLen {
		return bad("BufferBytes", cfg.BufferBytes, "cannot hold a frame")
	}
	return cfg, nil
}

// OpError is the error of a failed dial, handshake or write: what the
// LogSocket was doing, the collector's network and address, and the cause
// (a *net.OpError is replaced by its own cause, so that the address is
// named once).
type OpError struct {
	Op   string // "dial", "handshake" or "write"
	Net  string // the network, as given to Dial or New
	Addr string // the collector's address
	Err  error  // the cause
}

// Error reads "logsock: OP NET ADDR: CAUSE".
func (e *OpError) Error() string {
	return fmt.Sprintf("logsock: %s %s %s: %v", e.Op, e.Net, e.Addr, e.Err)
}

// Unwrap returns e.Err.
func (e *OpError) Unwrap() error { return e.Err }

// undelivered is the error of a Flush or Close that ended with frames
// held: why it ended (the context's error), and why the last connection
// or attempt failed, both wrapped.
func undelivered(frames int, why, last error) error {
	switch {
	case why == nil && last == nil:
		return fmt.Errorf("%w: %d frames", ErrUndelivered, frames)
	case last == nil:
		return fmt.Errorf("%w: %d frames: %w", ErrUndelivered, frames, why)
	case why == nil:
		return fmt.Errorf("%w: %d frames (last error: %w)", ErrUndelivered, frames, last)
	}
	return fmt.Errorf("%w: %d frames: %w (last error: %w)", ErrUndelivered, frames, why, last)
}

// Stats are a LogSocket's counters since it was made.
type Stats struct {
	Frames     uint64 // frames written whole to a connection (accepted by the kernel)
	Writes     uint64 // writes that carried frames: one a frame, a run of held frames, or a batch
	Bytes      uint64 // the message bytes of Frames
	Errors     uint64 // Log and Write calls that returned an error
	Connects   uint64 // connections opened, each with its handshake
	Reconnects uint64 // connections opened after one was lost
	Resent     uint64 // frames written again, whole, after their write failed
	// Dropped counts the frames dropped: by the Overflow policy, too large
	// for BufferBytes, refused by the collector (see Log), or held when
	// Close gave up.
	Dropped   uint64
	Held      int           // frames held now (in batching mode, queued), not counting a batch being written
	HeldBytes int           // their bytes, headers included
	Outage    time.Duration // time spent without a connection, after one failed or an attempt did
}

// tally is what the senders count of the frames they write.
type tally struct {
	frames, writes, bytes, errs, resent atomic.Uint64
}

// add counts frames written whole, with msgBytes message bytes, by one
// write that ok says succeeded; retried: the first had been tried before.
func (t *tally) add(frames, msgBytes int, retried, ok bool) {
	if frames > 0 {
		t.frames.Add(uint64(frames))
		t.bytes.Add(uint64(msgBytes))
		if retried {
			t.resent.Add(1)
		}
	}
	if ok && frames > 0 {
		t.writes.Add(1)
	}
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
	cfg    Config
	link   *link  // the connection, dialing and backoff
	q      *queue // the frames not yet written, BufferBytes and Overflow
	s      sender // direct or batching
	closed atomic.Bool
	done   chan struct{} // closed when Close begins: waiting calls return
	// tally changes at every write, closed is read at every Log: apart,
	// as in queue.
	_     cpu.CacheLinePad
	tally tally
}

// A sender is a mode: how frames get from Log to the link.
type sender interface {
	// send writes msg as one frame, or queues it.
	send(msg []byte) error
	// flush writes everything queued, until ctx is done.
	flush(ctx context.Context) error
	// close delivers what is queued until ctx is done, drops the rest,
	// and stops what the sender runs.
	close(ctx context.Context) error
	// exclusive takes the write role: no write is in progress, nor can
	// one start, until release.
	exclusive() (release func())
	// held returns the frames queued and their bytes.
	held() (frames, bytes int)
}

// New returns a LogSocket that connects when the first message is sent, so
// that a program can start while the collector is down: until it is up,
// messages are held. The network is "tcp", "tcp4", "tcp6" or "unix", and
// the address a host:port or a path (see ParseAddress for the URL form);
// both are checked here, with cfg, so that a mistake is an error now, not
// at the first dial. A nil cfg means defaults.
func New(network, address string, cfg *Config) (*LogSocket, error) {
	c, err := checkConfig(network, address, cfg)
	if err != nil {
		return nil, err
	}
	return newLogSocket(network, address, &c, nil, false), nil
}

// NewSyslog returns a LogSocket that sends each message to a syslog server
// in the octet-counted framing of syslog over TCP (RFC 6587, section 3.4.1;
// RFC 5425 over TLS, with Config.TLS): its length in bytes, in decimal,
// and a space; a connection has no handshake. The messages are the
// caller's: RFC 5424 (or RFC 3164) lines, as rsyslog's imptcp and imtcp
// take them with SupportOctetCountedFraming. Everything else is as with
// New: the held frames, the Overflow policy, the reconnects and the peek,
// both modes. Config.Order has no meaning here and must be left unset;
// the connection cannot be shared (Start, SendConn).
func NewSyslog(network, address string, cfg *Config) (*LogSocket, error) {
	if cfg != nil && cfg.Order != LittleEndian {
		return nil, fmt.Errorf("logsock: Config.Order %v: syslog's framing has no byte order", cfg.Order)
	}
	c, err := checkConfig(network, address, cfg)
	if err != nil {
		return nil, err
	}
	return newLogSocket(network, address, &c, nil, true), nil
}

// checkConfig checks network, address and cfg, and returns cfg with the
// defaults.
func checkConfig(network, address string, cfg *Config) (Config, error) {
	if err := checkNetwork(network); err != nil {
		return Config{}, fmt.Errorf("logsock: %w", err)
	}
	if err := checkAddress(network, address, false); err != nil {
		return Config{}, fmt.Errorf("logsock: %s address %q: %w", network, address, err)
	}
	if cfg != nil && cfg.TLS != nil && network == "unix" {
		return Config{}, errors.New("logsock: Config.TLS over a Unix socket: want network tcp, tcp4 or tcp6")
	}
	return cfg.withDefaults()
}

// newLogSocket returns a LogSocket for a checked cfg, on c if c is not
// nil (a connection adopted from another process), framing its messages as
// syslog does if octets. In batching mode it starts the writer.
func newLogSocket(network, address string, cfg *Config, c *conn, octets bool) *LogSocket {
	l := &LogSocket{cfg: *cfg, done: make(chan struct{})}
	f := framing{octets: octets, order: cfg.Order}
	var handshake func() []byte // syslog's framing has none
	if !f.octets {
		handshake = func() []byte { return AppendHandshake(nil, f.order, int32(os.Getpid())) }
	}
	if cfg.Batching {
		l.link = newLink(network, address, cfg, handshake, unixSendBuffer, c)
		chunkLen, least := chunkSize(cfg.BufferBytes), 0
		if chunkLen == 0 {
			least = batchBytes
		}
		l.q = newQueue(cfg, f, chunkLen, least)
		l.s = newBatcher(l.link, l.q, &l.tally, &l.closed, l.done, cfg)
	} else {
		l.link = newLink(network, address, cfg, handshake, 0, c)
		l.q = newQueue(cfg, f, 0, 0)
		l.s = newDirect(l.link, l.q, &l.tally, &l.closed, l.done, cfg)
	}
	return l
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
	c, err := l.link.connect(ctx)
	if err == nil {
		// The handshake now, so that the collector learns the pid before
		// the first message.
		release := l.s.exclusive()
		err = l.link.greet(c, time.Now().Add(l.cfg.DialTimeout))
		release()
	}
	if err != nil {
		l.Close() // and stop the writer of batching mode
		return nil, err
	}
	return l, nil
}

// Log sends msg as one frame. A nil error means the frame was written
// whole to the connection (accepted by the kernel), or is held for a later
// connection (in batching mode: queued). An error means it will not be
// sent: ErrFrameTooLarge, ErrBufferFull (counted in Stats.Dropped) or
// ErrClosed.
//
// A frame that the collector refuses, ending the connection while it is
// written, three times in a row, is dropped, counted, and reported by the
// next Flush, Sync or Close (wrapping ErrFrameTooLarge); Log then refuses
// frames that large at once.
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

func (l *LogSocket) send(msg []byte) error {
	var err error
	if limit := l.q.maxFrame.Load(); int64(len(msg)) > limit {
		err = l.tooLarge(len(msg), limit)
	} else {
		err = l.s.send(msg)
	}
	if err != nil {
		l.tally.errs.Add(1)
	}
	return err
}

// tooLarge is the error of a message of size bytes, above limit.
func (l *LogSocket) tooLarge(size int, limit int64) error {
	if limit < int64(l.cfg.MaxFrame) {
		return fmt.Errorf("%w: %d bytes: the collector refused a frame of %d bytes", ErrFrameTooLarge, size, limit+1)
	}
	return fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, size, limit)
}

// Flush writes every frame held or queued, connecting as needed, and
// returns nil when none is left; or, when ctx is done first, an error
// wrapping ErrUndelivered, the context's error and the last connection
// error (an *OpError). Frames stay held after a failed Flush. It returns
// ErrClosed once Close has begun.
func (l *LogSocket) Flush(ctx context.Context) error {
	if l.closed.Load() {
		return ErrClosed
	}
	return l.s.flush(ctx)
}

// Sync writes every frame held or queued, as Flush does, for up to
// WriteTimeout: it returns nil once they have all been written to the
// connection (accepted by the kernel; there are no acknowledgements from
// the collector), or else an error wrapping ErrUndelivered, and the frames
// stay held. With it a *LogSocket is a zapcore.WriteSyncer: zap's
// Logger.Sync waits for the records logged in batching mode to go out.
func (l *LogSocket) Sync() error {
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.WriteTimeout)
	defer cancel()
	return l.Flush(ctx)
}

// Close delivers the frames still held, for up to CloseTimeout, then closes
// the connection. Calls waiting for room, a backoff or a Flush return at
// once (ErrClosed); a write in progress is given until CloseTimeout, then
// its connection is closed under it, and a dial in progress is cancelled.
// In direct mode a call queued behind that write returns when it does. Frames not
// delivered by then are dropped and counted, and Close returns an error
// wrapping ErrUndelivered. Every later call returns ErrClosed; a closed
// LogSocket never dials again. Close is idempotent: later calls return
// nil.
func (l *LogSocket) Close() error {
	if l.closed.Swap(true) {
		return nil
	}
	close(l.done)
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.CloseTimeout)
	defer cancel()
	// At the deadline, abort ends the dials and waits, and closes the
	// connection under a write blocked on a stalled collector: that is
	// what bounds Close.
	aborted := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		l.link.abort()
		close(aborted)
	})
	err := l.s.close(ctx)
	if !stop() {
		<-aborted
	}
	// Under the write role, as every change to the connection: a Start or
	// SendConn in progress has either shared it, and its lock file is
	// closed with it here, or finds none.
	release := l.s.exclusive()
	c := l.link.shut()
	release()
	l.link.dials.Wait() // shut cancelled them
	if c != nil {
		if cerr := c.close(); err == nil && !errors.Is(cerr, net.ErrClosed) { // abort may have closed it
			err = cerr
		}
	}
	return err
}

// Stats returns the counters. In direct mode it does not wait for calls in
// progress; in batching mode it takes the LogSocket's lock briefly, to read
// the queue: no batch's write holds that lock, only Dial's handshake and a
// Start or SendConn readying the connection do.
func (l *LogSocket) Stats() Stats {
	held, heldBytes := l.s.held()
	return Stats{
		Frames:     l.tally.frames.Load(),
		Writes:     l.tally.writes.Load(),
		Bytes:      l.tally.bytes.Load(),
		Errors:     l.tally.errs.Load(),
		Connects:   l.link.connects.Load(),
		Reconnects: l.link.reconnects.Load(),
		Resent:     l.tally.resent.Load(),
		Dropped:    l.q.dropped.Load(),
		Held:       held,
		HeldBytes:  heldBytes,
		Outage:     l.link.outageTime(),
	}
}

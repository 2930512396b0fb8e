package logsock

import (
	"cmp"
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

// Overflow is what a call does when the buffer of held frames is full.
type Overflow uint8

const (
	Block      Overflow = iota // wait up to WriteTimeout for room, then drop the frame (ErrBufferFull)
	DropNewest                 // drop the new frame (ErrBufferFull)
	DropOldest                 // drop the oldest held frames to make room (nil)
)

// Config configures a LogSocket; nil, or a zero field, means the default.
type Config struct {
	Order        ByteOrder     // the byte order of the wire's integers
	MaxFrame     int           // the longest message Log sends; default DefaultMaxFrame
	DialTimeout  time.Duration // bounds a connection attempt; default 5 s
	CloseTimeout time.Duration // bounds Close's delivery of what is held; default 5 s
	WriteTimeout time.Duration // bounds a wait for the collector: a dial, room to write, a shared lock, under Block room to hold; default 5 s
	MinBackoff   time.Duration // the first wait between attempts, which doubles after each failure (a connection lost within 1 s is one), with jitter; default 50 ms
	MaxBackoff   time.Duration // the longest wait between attempts; default 5 s, or MinBackoff if more
	BufferBytes  int           // bounds the frames held, headers included; default 4 MiB
	Overflow     Overflow      // what a call does when BufferBytes is reached
	PeekInterval time.Duration // how often a write checks first that the collector has not closed (1 ns: always; negative: never); default 10 ms
	Batching     bool          // Log queues the frame for a goroutine that writes every caller's in batches; else (direct mode) no goroutine runs but a slow dial
	FlushDelay   time.Duration // with Batching, how long a batch gathers after its first frame (or until 256 KiB); default 10 ms
	// Acks turns on protocol v2: a frame carries its number, time and level,
	// is held until the collector (logsockd, Server) acknowledges it, and is
	// sent again after a reconnect. A child process makes its own connection.
	Acks        bool
	Tag         string        // with Acks, the sender's name (1-48 printable ASCII bytes); default the program's name
	TLS         *tls.Config   // if not nil, connections are TLS ones, over TCP, and cannot be shared
	KeepAlive   time.Duration // idle time before TCP keepalive probes; default 15 s, negative none
	UserTimeout time.Duration // TCP_USER_TIMEOUT on Linux; default 20 s, negative the system's
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
	case cfg.Tag != "" && !cfg.Acks:
		return bad("Tag", cfg.Tag, "protocol v2's: set Acks too")
	case cfg.Acks && cfg.PeekInterval < 0:
		return bad("PeekInterval", cfg.PeekInterval, "with Acks, how often the acknowledgements are read: want 0 (10 ms) or more")
	}
	if cfg.Tag != "" {
		if err := checkTag(cfg.Tag); err != nil {
			return bad("Tag", cfg.Tag, err.Error())
		}
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
	if cfg.BufferBytes < headerLen {
		return bad("BufferBytes", cfg.BufferBytes, "cannot hold a frame")
	}
	return cfg, nil
}

// OpError is the error of a failed dial, handshake or write.
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
	Frames     uint64        // frames written whole to a connection (accepted by the kernel)
	Writes     uint64        // writes that carried frames: one a frame, a run of held frames, or a batch
	Bytes      uint64        // the message bytes of Frames
	Errors     uint64        // Log and Write calls that returned an error
	Connects   uint64        // connections opened, each with its handshake
	Reconnects uint64        // connections opened after one was lost
	Resent     uint64        // frames written again, whole, after their write failed or (Acks) their connection was lost
	Acked      uint64        // frames the collector acknowledged (Acks)
	Dropped    uint64        // frames dropped: by Overflow, refused by the collector (see Log), or at Close
	Held       int           // frames held now (in batching mode, queued; with Acks, written and not acknowledged too), not counting a batch being written
	HeldBytes  int           // their bytes, headers included
	Outage     time.Duration // time spent without a connection, after one failed or an attempt did
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

// A LogSocket sends log messages to a collector, a frame each; it is safe for
// concurrent use.
type LogSocket struct {
	cfg    Config
	link   *link  // the connection, dialing and backoff
	q      *queue // the frames not yet written, BufferBytes and Overflow
	s      sender // direct or batching
	closed atomic.Bool
	done   chan struct{} // closed when Close begins: waiting calls return
	clock  wallClock     // v2's: each frame's time
	// tally changes at every write, closed is read at every Log: apart,
	// as in queue.
	_     cpu.CacheLinePad
	tally tally
}

// A sender is a mode: how frames get from Log to the link.
type sender interface {
	// send writes msg as one frame, with m (v2), or queues it.
	send(msg []byte, m meta) error
	// flush writes everything queued, until ctx is done.
	flush(ctx context.Context) error
	// close delivers what is queued until ctx is done, drops the rest,
	// and stops what the sender runs.
	close(ctx context.Context) error
	// held returns the frames queued and their bytes.
	held() (frames, bytes int)
}

// New returns a LogSocket that connects when first needed, holding messages
// until then. It checks the network (tcp, tcp4, tcp6, unix) and address now.
func New(network, address string, cfg *Config) (*LogSocket, error) {
	c, err := checkConfig(network, address, cfg)
	if err != nil {
		return nil, err
	}
	return newLogSocket(network, address, &c, nil, false), nil
}

// NewSyslog returns a LogSocket for RFC 5424 messages to a syslog server,
// octet-counted (RFC 6587, 5425), with no handshake; Order must be unset.
func NewSyslog(network, address string, cfg *Config) (*LogSocket, error) {
	if cfg != nil && cfg.Order != LittleEndian {
		return nil, fmt.Errorf("logsock: Config.Order %v: syslog's framing has no byte order", cfg.Order)
	}
	if cfg != nil && cfg.Acks {
		return nil, errors.New("logsock: Config.Acks true: a syslog server does not acknowledge")
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
	f := framing{octets: octets, v2: cfg.Acks, order: cfg.Order}
	var handshake func() []byte // syslog's framing has none
	if !f.octets {
		handshake = func() []byte { return appendHandshake(nil, f.order, int32(os.Getpid())) }
	}
	sendBuffer, chunkLen, least := 0, 0, 0
	if cfg.Batching {
		sendBuffer, chunkLen = unixSendBuffer, chunkSize(cfg.BufferBytes)
		if chunkLen == 0 {
			least = batchBytes
		}
	}
	l.link = newLink(network, address, cfg, handshake, sendBuffer, c)
	l.q = newQueue(cfg, f, chunkLen, least)
	if cfg.Acks {
		k := l.link
		k.v2, k.ackEvery, k.order = true, cfg.PeekInterval, cfg.Order
		k.session = newSession(cmp.Or(cfg.Tag, defaultTag()))
		k.floor, k.nextSeq = l.q.floor.Load, l.q.last.Load
		k.w.waiting = func(c *conn) { k.pollAcks(c) }
	}
	if cfg.Batching {
		l.s = newBatcher(l)
	} else {
		l.s = newDirect(l)
	}
	return l
}

// Dial is New, then a connection now, or an error.
func Dial(network, address string, cfg *Config) (*LogSocket, error) {
	l, err := New(network, address, cfg)
	if err != nil {
		return nil, err
	}
	c, err := l.link.connect(context.Background())
	if err == nil {
		// The handshake now, so that the collector learns the pid before
		// the first message.
		l.link.role.Lock()
		err = l.link.greet(c, time.Now().Add(l.cfg.DialTimeout))
		l.link.role.Unlock()
	}
	if err != nil {
		l.Close() // and stop the writer of batching mode
		return nil, err
	}
	return l, nil
}

// Log sends msg as one frame: nil means it was written whole or is held. A
// frame the collector refuses three times is dropped, and reported by Flush.
func (l *LogSocket) Log(msg string) error {
	return l.send(unsafe.Slice(unsafe.StringData(msg), len(msg)), LevelInfo)
}

// LogLevel is Log with a level, which v2 (Acks) sends and v1 drops.
func (l *LogSocket) LogLevel(level Level, msg string) error {
	return l.send(unsafe.Slice(unsafe.StringData(msg), len(msg)), level)
}

// Write is Log for log and slog, which drop its error. It does not retain p.
func (l *LogSocket) Write(p []byte) (int, error) {
	if err := l.send(p, LevelInfo); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (l *LogSocket) send(msg []byte, level Level) error {
	m := meta{level: level} // checked by sendMeta on v1 too
	if l.cfg.Acks {
		m.at = l.clock.now()
	}
	return l.sendMeta(msg, m)
}

// wallClock reads the wall clock at the price of the monotonic one: the
// wall time of a base, plus the monotonic time since it, one read of the
// clock where time.Now takes two (on a KVM guest's kvm-clock, 25 ns a
// frame of batching mode's 100 with acks). The base is taken again every
// second, so a step of the wall clock (settimeofday, an NTP step) shows in
// the frames' times within a second; between bases the two clocks run at
// the same rate, as NTP slews both.
type wallClock struct {
	base atomic.Pointer[clockBase]
}

type clockBase struct {
	t    time.Time // with its monotonic reading
	unix int64     // t's Unix nanoseconds
}

// rebase is how long a base serves.
const rebase = time.Second

// now returns the time, Unix nanoseconds.
func (c *wallClock) now() int64 {
	if b := c.base.Load(); b != nil {
		if d := time.Since(b.t); d >= 0 && d < rebase {
			return b.unix + int64(d)
		}
	}
	b := &clockBase{t: newBase()}
	b.unix = b.t.UnixNano()
	c.base.Store(b)
	return b.unix
}

// newBase reads the clock for a base. time.Now reads the wall clock, then
// the monotonic one: a thread that the kernel stops between the two gives
// a base whose wall time lags, and every frame's time for a second with
// it. Two readings whose wall and monotonic intervals agree were not
// stopped in between.
func newBase() time.Time {
	t := time.Now()
	for range 3 {
		u := time.Now()
		if skew := u.UnixNano() - t.UnixNano() - int64(u.Sub(t)); skew > -baseSkew && skew < baseSkew {
			return u
		}
		t = u
	}
	return t
}

// baseSkew is how far a base's wall and monotonic readings may disagree.
const baseSkew = int64(20 * time.Microsecond)

// sendMeta sends msg with m, whose time and level a v2 frame carries.
func (l *LogSocket) sendMeta(msg []byte, m meta) error {
	var err error
	if limit := l.q.maxFrame.Load(); int64(len(msg)) > limit {
		err = l.tooLarge(len(msg), limit)
	} else if m.level > LevelDebug {
		err = fmt.Errorf("logsock: Level %d: want LevelEmergency (0) to LevelDebug (7)", uint8(m.level))
	} else {
		err = l.s.send(msg, m)
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

// Flush writes every frame held (with Acks, until acknowledged); if ctx ends
// first, they stay held, and its error wraps ErrUndelivered, ctx's error and
// the last *OpError.
func (l *LogSocket) Flush(ctx context.Context) error {
	if l.closed.Load() {
		return ErrClosed
	}
	return l.s.flush(ctx)
}

// Sync is Flush for up to WriteTimeout, as a zapcore.WriteSyncer's.
func (l *LogSocket) Sync() error {
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.WriteTimeout)
	defer cancel()
	return l.Flush(ctx)
}

// Close delivers what is held for up to CloseTimeout, then closes; every call
// then returns ErrClosed. What it dropped, its error reports (ErrUndelivered).
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
	l.link.role.Lock()
	c := l.link.shut()
	l.link.role.Unlock()
	l.link.dials.Wait() // shut cancelled them
	if c != nil {
		if cerr := c.close(); err == nil && !errors.Is(cerr, net.ErrClosed) { // abort may have closed it
			err = cerr
		}
	}
	return err
}

// Stats returns the counters, without waiting for a write in progress.
func (l *LogSocket) Stats() Stats {
	held, heldBytes := l.s.held()
	return Stats{
		Frames:     l.tally.frames.Load(),
		Writes:     l.tally.writes.Load(),
		Bytes:      l.tally.bytes.Load(),
		Errors:     l.tally.errs.Load(),
		Connects:   l.link.connects.Load(),
		Reconnects: l.link.reconnects.Load(),
		Resent:     l.tally.resent.Load() + l.q.resent.Load(),
		Acked:      l.q.ackCount.Load(),
		Dropped:    l.q.dropped.Load(),
		Held:       held,
		HeldBytes:  heldBytes,
		Outage:     l.link.outageTime(),
	}
}

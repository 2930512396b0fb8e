package logsock

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
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
)

// ErrClosed is returned by calls on a LogSocket after Close.
var ErrClosed = errors.New("logsock: LogSocket closed")

// Config configures a LogSocket. A nil *Config, and the zero value of each
// field, mean the defaults.
type Config struct {
	// Order is the byte order of the handshake and frame headers; it must
	// match the collector's. The zero value is LittleEndian.
	Order ByteOrder
	// MaxFrame is the longest message, in bytes, that Log and Write send;
	// a longer one is refused with ErrFrameTooLarge, never truncated. Keep
	// it at or below the collector's limit. Zero means DefaultMaxFrame.
	MaxFrame int
	// DialTimeout bounds each connection attempt, handshake included.
	// Zero means DefaultDialTimeout.
	DialTimeout time.Duration
	// WriteTimeout bounds how long one call waits for room in the socket's
	// send buffer, so that a stalled collector cannot block callers
	// forever. A frame that times out half-written tears the stream, so
	// the connection is dropped. Zero means DefaultWriteTimeout.
	WriteTimeout time.Duration
}

func (c *Config) withDefaults() (Config, error) {
	var cfg Config
	if c != nil {
		cfg = *c
	}
	if cfg.Order > BigEndian {
		return cfg, fmt.Errorf("logsock: unknown byte order %d", cfg.Order)
	}
	if cfg.MaxFrame < 0 || cfg.MaxFrame > math.MaxInt32 {
		return cfg, fmt.Errorf("logsock: MaxFrame %d outside [0, %d]", cfg.MaxFrame, math.MaxInt32)
	}
	if cfg.DialTimeout < 0 || cfg.WriteTimeout < 0 {
		return cfg, errors.New("logsock: negative timeout")
	}
	if cfg.MaxFrame == 0 {
		cfg.MaxFrame = DefaultMaxFrame
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
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
	Frames   uint64 // frames written whole to a connection
	Bytes    uint64 // message bytes in those frames (headers not counted)
	Errors   uint64 // Log and Write calls that returned an error
	Connects uint64 // connections opened, each with its own handshake
}

// A LogSocket sends log messages to a collector, one frame each, over one
// stream connection that opens with the handshake. It is safe for use by
// any number of goroutines: each frame goes out whole in one write, never
// interleaved with another.
//
// When a write fails, the connection is dropped and the call returns the
// error; the next call dials again, with a fresh handshake.
type LogSocket struct {
	network, address string
	cfg              Config
	dialer           net.Dialer

	closed atomic.Bool
	live   atomic.Pointer[conn] // set under mu; read by Close without it

	mu    sync.Mutex // serialises frames; guards w, hs and hsDue
	w     frameWriter
	hs    [HeaderLen]byte // the handshake of the current connection
	hsDue bool            // hs has not been written yet: it goes out with the next frame

	frames, bytes, errs, connects atomic.Uint64
}

// conn is one connection and its raw handle for writing.
type conn struct {
	nc net.Conn
	rc syscall.RawConn
}

// New returns a LogSocket that connects when the first message is sent, so
// that a program can start while the collector is down. The network is
// "tcp", "tcp4", "tcp6" or "unix". A nil cfg means defaults.
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
	l := &LogSocket{network: network, address: address, cfg: c}
	l.dialer.Timeout = c.DialTimeout
	l.w.init(c.Order)
	return l, nil
}

// Dial connects to the collector at address and sends the handshake.
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
	c, err := l.connect(ctx)
	if err == nil {
		err = l.flushHandshake(c)
	}
	l.mu.Unlock()
	if err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// Log sends msg as one frame. It returns once the whole frame has been
// written to the connection (accepted by the kernel, not acknowledged by
// the collector), or with the error that stopped it.
func (l *LogSocket) Log(msg string) error {
	return l.send(unsafe.Slice(unsafe.StringData(msg), len(msg)))
}

// Write sends p as one frame, so that each call of a log.Logger or of a
// slog handler is one record. It returns len(p) once the frame is written,
// as Log does. Write does not retain p.
func (l *LogSocket) Write(p []byte) (int, error) {
	if err := l.send(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Stats returns the counters. It does not wait for calls in progress.
func (l *LogSocket) Stats() Stats {
	return Stats{
		Frames:   l.frames.Load(),
		Bytes:    l.bytes.Load(),
		Errors:   l.errs.Load(),
		Connects: l.connects.Load(),
	}
}

// Close closes the connection. Calls blocked waiting to write return
// ErrClosed at once, and every later call returns ErrClosed: a closed
// LogSocket never dials again. Close is idempotent; only the first call
// reports an error from closing the connection.
func (l *LogSocket) Close() error {
	if l.closed.Swap(true) {
		return nil
	}
	var err error
	if c := l.live.Load(); c != nil {
		err = c.nc.Close() // unblocks a writer waiting in mu
	}
	l.mu.Lock()
	l.live.Store(nil)
	l.mu.Unlock()
	return err
}

func (l *LogSocket) send(msg []byte) error {
	if len(msg) > l.cfg.MaxFrame {
		l.errs.Add(1)
		return fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, len(msg), l.cfg.MaxFrame)
	}
	l.mu.Lock()
	err := l.sendLocked(msg)
	l.mu.Unlock()
	if err != nil {
		l.errs.Add(1)
		return err
	}
	l.frames.Add(1)
	l.bytes.Add(uint64(len(msg)))
	return nil
}

func (l *LogSocket) sendLocked(msg []byte) error {
	if l.closed.Load() {
		return ErrClosed
	}
	c := l.live.Load()
	if c == nil {
		var err error
		if c, err = l.connect(context.Background()); err != nil {
			return err
		}
	}
	var hs []byte
	if l.hsDue {
		hs = l.hs[:]
	}
	if err := l.w.write(c, hs, msg, true, l.cfg.WriteTimeout); err != nil {
		return l.drop(c, "write", err)
	}
	l.hsDue = false
	return nil
}

// connect dials and readies the handshake, to go out with the first frame
// in the same write. The caller holds mu.
func (l *LogSocket) connect(ctx context.Context) (*conn, error) {
	nc, err := l.dialer.DialContext(ctx, l.network, l.address)
	if err != nil {
		return nil, &OpError{Op: "dial", Net: l.network, Addr: l.address, Err: err}
	}
	sc, ok := nc.(syscall.Conn)
	if !ok { // net.Dial returns *TCPConn or *UnixConn, which are
		nc.Close()
		return nil, &OpError{Op: "dial", Net: l.network, Addr: l.address, Err: errors.New("connection has no file descriptor")}
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		nc.Close()
		return nil, &OpError{Op: "dial", Net: l.network, Addr: l.address, Err: err}
	}
	c := &conn{nc: nc, rc: rc}
	l.live.Store(c)
	if l.closed.Load() { // Close ran after the dial and did not see c
		l.live.Store(nil)
		nc.Close()
		return nil, ErrClosed
	}
	PutHandshake(l.hs[:], l.cfg.Order, int32(os.Getpid()))
	l.hsDue = true
	l.connects.Add(1)
	return c, nil
}

// flushHandshake writes a pending handshake on its own, as Dial does so that
// the collector learns the pid before the first message. The caller holds mu.
func (l *LogSocket) flushHandshake(c *conn) error {
	if err := l.w.write(c, l.hs[:], nil, false, l.cfg.DialTimeout); err != nil {
		return l.drop(c, "handshake", err)
	}
	l.hsDue = false
	return nil
}

// drop forgets a connection whose write failed: a frame may be torn, so the
// stream cannot go on. The caller holds mu.
func (l *LogSocket) drop(c *conn, op string, err error) error {
	l.live.Store(nil)
	c.nc.Close()
	if l.closed.Load() {
		return ErrClosed
	}
	return &OpError{Op: op, Net: l.network, Addr: l.address, Err: err}
}

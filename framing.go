package logsock

import (
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"unicode/utf8"
)

// HeaderLen is the size in bytes of the handshake and of a frame header:
// each is one signed 32-bit integer.
const HeaderLen = 4

// DefaultMaxFrame is the default limit, in bytes, on one message: 1 MiB.
const DefaultMaxFrame = 1 << 20

// ByteOrder is the byte order of the integers on the wire. The zero value is
// LittleEndian, the order of the article's struct.pack('i', ...) on x86-64 and
// arm64. It implements encoding.TextMarshaler and encoding.TextUnmarshaler
// ("little", "big"), so it can be a flag.TextVar or an environment value.
type ByteOrder uint8

const (
	// LittleEndian puts the least significant byte first (the default).
	LittleEndian ByteOrder = iota
	// BigEndian puts the most significant byte first (network order).
	BigEndian
)

// String returns "little" or "big".
func (o ByteOrder) String() string {
	switch o {
	case LittleEndian:
		return "little"
	case BigEndian:
		return "big"
	}
	return fmt.Sprintf("ByteOrder(%d)", uint8(o))
}

// MarshalText returns the name that String returns, or an error for an
// unknown order.
func (o ByteOrder) MarshalText() ([]byte, error) {
	if o > BigEndian {
		return nil, fmt.Errorf("logsock: unknown byte order %d", uint8(o))
	}
	return []byte(o.String()), nil
}

// UnmarshalText accepts "little" or "big".
func (o *ByteOrder) UnmarshalText(text []byte) error {
	switch string(text) {
	case "little":
		*o = LittleEndian
	case "big":
		*o = BigEndian
	default:
		return fmt.Errorf("logsock: byte order %q: want little or big", text)
	}
	return nil
}

func (o ByteOrder) put(b []byte, v int32) {
	_ = b[3] // one bounds check
	u := uint32(v)
	if o == BigEndian {
		b[0], b[1], b[2], b[3] = byte(u>>24), byte(u>>16), byte(u>>8), byte(u)
		return
	}
	b[0], b[1], b[2], b[3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
}

func (o ByteOrder) get(b []byte) int32 {
	_ = b[3]
	if o == BigEndian {
		return int32(uint32(b[3]) | uint32(b[2])<<8 | uint32(b[1])<<16 | uint32(b[0])<<24)
	}
	return int32(uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24)
}

// Errors that a ProtocolError wraps, and that the client returns for a
// message it will not send. Match them with errors.Is.
var (
	// ErrNegativeLength means a frame header declared a length below zero.
	ErrNegativeLength = errors.New("logsock: negative frame length")
	// ErrFrameTooLarge means a frame is longer than the limit in force.
	ErrFrameTooLarge = errors.New("logsock: frame too large")
	// ErrInvalidCodePoint means that a frame whose length counts code
	// points (DecoderConfig.CodePoints) holds bytes that are not UTF-8:
	// its length cannot be counted, so the stream cannot be followed.
	ErrInvalidCodePoint = errors.New("logsock: invalid UTF-8 where the length counts code points")
)

// ProtocolError describes a stream that breaks the wire format: a bad
// length, or a handshake or frame cut short. Err is ErrNegativeLength,
// ErrFrameTooLarge, ErrInvalidCodePoint or io.ErrUnexpectedEOF.
type ProtocolError struct {
	Part   string // "handshake", "frame header" or "frame body"
	Offset int64  // stream offset of the handshake's or frame's first byte
	Data   []byte // the header bytes, the start of a truncated part, or the bytes that are not UTF-8
	Length int64  // the length the header declared (frame parts only)
	Limit  int    // the limit in force, for ErrFrameTooLarge
	Err    error
}

func (e *ProtocolError) Error() string {
	const quoteMax = 16 // enough to recognise what arrived, short enough to log
	data := e.Data
	cut := ""
	if len(data) > quoteMax {
		data, cut = data[:quoteMax], "..."
	}
	switch {
	case errors.Is(e.Err, ErrFrameTooLarge):
		return fmt.Sprintf("logsock: %s at offset %d: %q declares %d bytes, limit %d: %v",
			e.Part, e.Offset, data, e.Length, e.Limit, e.Err)
	case errors.Is(e.Err, ErrInvalidCodePoint):
		return fmt.Sprintf("logsock: %s at offset %d: %q in a frame declaring %d code points: %v",
			e.Part, e.Offset, data, e.Length, e.Err)
	case errors.Is(e.Err, ErrNegativeLength):
		return fmt.Sprintf("logsock: %s at offset %d: %q declares %d: %v",
			e.Part, e.Offset, data, e.Length, e.Err)
	case e.Part == "frame body":
		return fmt.Sprintf("logsock: %s at offset %d: truncated after %d bytes of a frame declaring %d: %q%s: %v",
			e.Part, e.Offset, len(e.Data), e.Length, data, cut, e.Err)
	}
	return fmt.Sprintf("logsock: %s at offset %d: truncated after %d of %d bytes: %q: %v",
		e.Part, e.Offset, len(e.Data), HeaderLen, data, e.Err)
}

// Unwrap returns e.Err.
func (e *ProtocolError) Unwrap() error { return e.Err }

// AppendHandshake appends the handshake for pid to dst.
func AppendHandshake(dst []byte, order ByteOrder, pid int32) []byte {
	var b [HeaderLen]byte
	order.put(b[:], pid)
	return append(dst, b[:]...)
}

// PutHandshake writes the handshake for pid into b[:HeaderLen]. It panics if
// b is too short, as binary.ByteOrder.PutUint32 does.
func PutHandshake(b []byte, order ByteOrder, pid int32) {
	order.put(b, pid)
}

// ReadHandshake reads a handshake from r and returns its pid. It returns
// io.EOF if r ends before the first byte, and a *ProtocolError wrapping
// io.ErrUnexpectedEOF if it ends inside the handshake.
func ReadHandshake(r io.Reader, order ByteOrder) (int32, error) {
	var b [HeaderLen]byte
	n, err := io.ReadFull(r, b[:])
	if err != nil {
		if err == io.ErrUnexpectedEOF {
			return 0, &ProtocolError{Part: "handshake", Data: append([]byte(nil), b[:n]...), Err: err}
		}
		return 0, err
	}
	return order.get(b[:]), nil
}

// AppendFrame appends msg to dst as one frame: its length, then its bytes.
// It returns ErrFrameTooLarge if msg is longer than math.MaxInt32 bytes.
func AppendFrame(dst []byte, order ByteOrder, msg []byte) ([]byte, error) {
	if len(msg) > math.MaxInt32 {
		return dst, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, len(msg), math.MaxInt32)
	}
	dst = AppendHandshake(dst, order, int32(len(msg))) // same layout: one int32
	return append(dst, msg...), nil
}

// PutFrameHeader writes the header of a frame of n message bytes into
// b[:HeaderLen]. It panics if b is too short or n is outside [0, MaxInt32]:
// both are the caller's bugs, and the message is the caller's to check.
func PutFrameHeader(b []byte, order ByteOrder, n int) {
	if n < 0 || n > math.MaxInt32 {
		panic(fmt.Sprintf("logsock: PutFrameHeader: length %d out of range", n))
	}
	order.put(b, int32(n))
}

// ParseFrameHeader returns the message length that hdr[:HeaderLen] declares.
// A negative length, or one above limit (limit <= 0 means DefaultMaxFrame),
// is a *ProtocolError that quotes the header.
func ParseFrameHeader(hdr []byte, order ByteOrder, limit int) (int, error) {
	if limit <= 0 {
		limit = DefaultMaxFrame
	}
	n := order.get(hdr)
	switch {
	case n < 0:
		return 0, &ProtocolError{Part: "frame header", Data: append([]byte(nil), hdr[:HeaderLen]...),
			Length: int64(n), Err: ErrNegativeLength}
	case int64(n) > int64(limit):
		return 0, &ProtocolError{Part: "frame header", Data: append([]byte(nil), hdr[:HeaderLen]...),
			Length: int64(n), Limit: limit, Err: ErrFrameTooLarge}
	}
	return int(n), nil
}

// ReadFrame reads one frame from r and appends its message to dst. It checks
// the declared length against limit (<= 0 means DefaultMaxFrame) before it
// reads or allocates anything for the body. It returns io.EOF only if r ends
// before the frame's first byte; an end inside the frame is a *ProtocolError
// wrapping io.ErrUnexpectedEOF. For a stream of frames, a Decoder is faster.
func ReadFrame(r io.Reader, order ByteOrder, limit int, dst []byte) ([]byte, error) {
	var hdr [HeaderLen]byte
	n, err := io.ReadFull(r, hdr[:])
	if err != nil {
		if err == io.ErrUnexpectedEOF {
			return dst, &ProtocolError{Part: "frame header", Data: append([]byte(nil), hdr[:n]...), Err: err}
		}
		return dst, err
	}
	size, err := ParseFrameHeader(hdr[:], order, limit)
	if err != nil {
		return dst, err
	}
	start := len(dst)
	dst = append(dst, make([]byte, size)...) // the limit was checked above
	got, err := io.ReadFull(r, dst[start:])
	if err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			err = &ProtocolError{Part: "frame body", Data: dst[start : start+got : start+got],
				Length: int64(size), Err: io.ErrUnexpectedEOF}
		}
		return dst[:start], err
	}
	return dst, nil
}

// DecoderConfig configures a Decoder. A nil *DecoderConfig, and the zero
// value of each field, mean the defaults.
type DecoderConfig struct {
	// Order is the byte order of the handshake and the frame headers.
	Order ByteOrder
	// MaxFrame is the largest message accepted, in bytes; a larger declared
	// length is an error before anything is allocated for it. Zero means
	// DefaultMaxFrame.
	MaxFrame int
	// CodePoints reads the length as a count of Unicode code points, not of
	// bytes: what the article's Python client sends (len(text) of a str), so
	// that its streams decode even with non-ASCII text. MaxFrame still limits
	// the bytes of a message, and bytes that are not UTF-8 are an error
	// (ErrInvalidCodePoint), since their code points cannot be counted.
	CodePoints bool
}

const (
	minReadBuf = 4 << 10  // first buffer: small, so an idle connection costs little
	maxReadBuf = 64 << 10 // a buffer that reads fill keeps doubling up to this
)

// Decoder reads a handshake and frames from an io.Reader. It reads ahead in
// large chunks, and returns each message as a slice of its own buffer.
// A Decoder is not safe for concurrent use.
//
// Its buffer grows only by what has arrived, never by what a header
// declares: a peer that announces a large frame and sends nothing costs no
// more than the bytes it sent.
type Decoder struct {
	r          io.Reader
	order      ByteOrder
	limit      int
	codePoints bool

	buf        []byte // read-ahead; buf[start:end] is not yet consumed
	start, end int
	want       int        // the size of the buffer given back while idle
	idle       idleReader // r, if it can wait for data without a buffer
	off        int64      // stream offset of buf[start]
	readErr    error      // sticky error from r, reported once the buffer runs dry
	err        error      // sticky protocol error
}

// NewDecoder returns a Decoder that reads from r. A nil cfg means defaults.
func NewDecoder(r io.Reader, cfg *DecoderConfig) *Decoder {
	d := &Decoder{r: r, limit: DefaultMaxFrame}
	d.idle, _ = r.(idleReader)
	if cfg != nil {
		d.order, d.codePoints = cfg.Order, cfg.CodePoints
		if cfg.MaxFrame > 0 {
			d.limit = cfg.MaxFrame
		}
	}
	return d
}

// Handshake reads the handshake that opens the stream and returns its pid.
// Call it once, before Next; a stream without a handshake (for example one
// joined mid-way) is read by calling Next alone. The errors follow Next's.
func (d *Decoder) Handshake() (int32, error) {
	if err := d.fill(HeaderLen); err != nil {
		return 0, d.truncated("handshake", err, 0)
	}
	pid := d.order.get(d.buf[d.start:])
	d.consume(HeaderLen)
	return pid, nil
}

// Next returns the next message. The slice aliases the Decoder's buffer and
// is valid only until the next call; use AppendNext to keep a copy.
//
// Next returns io.EOF only when the stream ends at a frame boundary. A
// stream that ends inside a frame gives a *ProtocolError wrapping
// io.ErrUnexpectedEOF; a negative or too large length gives a
// *ProtocolError wrapping ErrNegativeLength or ErrFrameTooLarge that quotes
// the header, and every later call returns the same error. Any other error
// is the reader's, returned once all complete frames before it are read.
func (d *Decoder) Next() ([]byte, error) {
	// Fast path: a whole valid frame is already buffered.
	if have := d.end - d.start; have >= HeaderLen && !d.codePoints && d.err == nil {
		n := d.order.get(d.buf[d.start:])
		if n >= 0 && int(n) <= d.limit && int(n) <= have-HeaderLen {
			p := d.start + HeaderLen
			msg := d.buf[p : p+int(n) : p+int(n)]
			d.consume(HeaderLen + int(n))
			return msg, nil
		}
	}
	return d.next()
}

func (d *Decoder) next() ([]byte, error) {
	if d.err != nil {
		return nil, d.err
	}
	if err := d.fill(HeaderLen); err != nil {
		return nil, d.truncated("frame header", err, 0)
	}
	n, err := ParseFrameHeader(d.buf[d.start:d.start+HeaderLen], d.order, d.limit)
	if err != nil {
		pe := err.(*ProtocolError)
		pe.Offset = d.off
		d.err = pe
		return nil, pe
	}
	size := n
	if d.codePoints {
		if size, err = d.runeBytes(n); err != nil {
			return nil, err
		}
	} else if err := d.fill(HeaderLen + size); err != nil {
		return nil, d.truncated("frame body", err, int64(n))
	}
	p := d.start + HeaderLen
	msg := d.buf[p : p+size : p+size]
	d.consume(HeaderLen + size)
	return msg, nil
}

// AppendNext reads the next message as Next does and appends a copy of it
// to dst.
func (d *Decoder) AppendNext(dst []byte) ([]byte, error) {
	msg, err := d.Next()
	if err != nil {
		return dst, err
	}
	return append(dst, msg...), nil
}

// Reset discards the Decoder's state and makes it read from r, as a new
// Decoder with the same configuration would, but keeping its buffer.
func (d *Decoder) Reset(r io.Reader) {
	d.r = r
	d.idle, _ = r.(idleReader)
	d.start, d.end, d.off = 0, 0, 0
	d.readErr, d.err = nil, nil
}

// Buffered returns the number of bytes read from r and not yet consumed.
func (d *Decoder) Buffered() int { return d.end - d.start }

func (d *Decoder) consume(n int) {
	d.start += n
	d.off += int64(n)
	if d.start == d.end {
		d.start, d.end = 0, 0 // empty: the next read starts at the front
	}
}

// runeBytes returns the byte length of the n code points that follow the
// header, reading as needed; the bytes are limited as in byte mode.
func (d *Decoder) runeBytes(n int) (int, error) {
	pos := d.start + HeaderLen
	for i := 0; i < n; i++ {
		if !utf8FullRune(d.buf[pos:d.end]) {
			rel := pos - d.start
			if err := d.fillMore(); err != nil {
				return 0, d.truncated("frame body", err, int64(n))
			}
			pos = d.start + rel // fill may move the data
			i--
			continue
		}
		r, size := utf8.DecodeRune(d.buf[pos:d.end])
		if r == utf8.RuneError && size == 1 {
			// The article's client cannot send this (str.encode fails
			// first), and counting it as one code point would let a
			// misaligned stream run on into garbage.
			d.err = &ProtocolError{Part: "frame body", Offset: d.off,
				Data:   append([]byte(nil), d.buf[pos:min(pos+utf8.UTFMax, d.end)]...),
				Length: int64(n), Err: ErrInvalidCodePoint}
			return 0, d.err
		}
		if pos+size-(d.start+HeaderLen) > d.limit {
			d.err = &ProtocolError{Part: "frame body", Offset: d.off,
				Data:   append([]byte(nil), d.buf[d.start:d.start+HeaderLen]...),
				Length: int64(n), Limit: d.limit, Err: ErrFrameTooLarge}
			return 0, d.err
		}
		pos += size
	}
	return pos - (d.start + HeaderLen), nil
}

// utf8FullRune is utf8.FullRune with a fast path for ASCII.
func utf8FullRune(p []byte) bool {
	return len(p) > 0 && (p[0] < utf8.RuneSelf || utf8.FullRune(p))
}

// truncated turns a fill error into what the caller returns: io.EOF at a
// boundary, a *ProtocolError inside a part, or the reader's own error.
func (d *Decoder) truncated(part string, err error, declared int64) error {
	if err != io.EOF {
		return err
	}
	have := d.end - d.start
	if have == 0 {
		return io.EOF
	}
	data := d.buf[d.start:d.end]
	if part == "frame body" {
		data = data[HeaderLen:]
	}
	d.err = &ProtocolError{Part: part, Offset: d.off, Data: append([]byte(nil), data...),
		Length: declared, Err: io.ErrUnexpectedEOF}
	return d.err
}

// fill reads until at least need bytes are buffered, or fails with the
// reader's error (io.EOF included). need never exceeds the limit plus a
// header and a rune, so the buffer stays bounded.
func (d *Decoder) fill(need int) error {
	for d.end-d.start < need {
		if err := d.fillMore(); err != nil {
			return err
		}
	}
	return nil
}

// fillMore does one read into the buffer, making room first.
func (d *Decoder) fillMore() error {
	if d.readErr != nil {
		return d.readErr
	}
	if d.end == len(d.buf) {
		d.makeRoom()
	}
	if d.idle != nil && d.start == d.end {
		// Nothing buffered: if nothing has arrived either, give the buffer
		// back while the stream is quiet (SPEC: many idle connections must
		// cost little), and take one again when data comes.
		if n, err := d.idle.readNow(d.buf[d.end:]); err == errWouldBlock {
			d.release()
			if err := d.idle.waitReadable(); err != nil {
				d.readErr = err
				return err
			}
			d.makeRoom()
		} else if n > 0 || err != nil {
			return d.filled(n, err)
		}
	}
	for range 100 { // as bufio: a reader that keeps returning 0, nil is broken
		n, err := d.r.Read(d.buf[d.end:])
		if n > 0 || err != nil {
			return d.filled(n, err)
		}
	}
	d.readErr = io.ErrNoProgress
	return d.readErr
}

// filled takes in a read of n bytes that returned err.
func (d *Decoder) filled(n int, err error) error {
	if n < 0 || n > len(d.buf)-d.end {
		panic("logsock: reader returned an invalid count")
	}
	d.end += n
	if err != nil {
		d.readErr = err
	}
	if n > 0 {
		if d.end == len(d.buf) && len(d.buf) < maxReadBuf {
			d.grow(2 * len(d.buf)) // reads fill the buffer: the peer is busy
		}
		return nil
	}
	return err
}

// idleReader is what a Decoder's reader offers so that an idle stream
// holds no read buffer; the Server's connections do.
type idleReader interface {
	// readNow reads what has arrived, without waiting: errWouldBlock if
	// nothing has.
	readNow(p []byte) (int, error)
	// waitReadable waits, without a buffer, until a read would not block.
	waitReadable() error
}

var errWouldBlock = errors.New("logsock: no data yet")

// Read buffers of the two common sizes are shared between idle streams.
var (
	smallBufs = sync.Pool{New: func() any { return new([minReadBuf]byte) }}
	largeBufs = sync.Pool{New: func() any { return new([maxReadBuf]byte) }}
)

// release gives an empty buffer back, remembering its size.
func (d *Decoder) release() {
	switch d.want = min(len(d.buf), maxReadBuf); len(d.buf) {
	case minReadBuf:
		smallBufs.Put((*[minReadBuf]byte)(d.buf))
	case maxReadBuf:
		largeBufs.Put((*[maxReadBuf]byte)(d.buf))
	}
	d.buf, d.start, d.end = nil, 0, 0
}

// makeRoom frees space at the end of a full buffer: by moving the unread
// bytes to the front when there is a gap there, or else by doubling, which
// happens only when the whole buffer holds one frame still arriving.
func (d *Decoder) makeRoom() {
	switch {
	case d.buf == nil && d.want == maxReadBuf:
		d.buf = largeBufs.Get().(*[maxReadBuf]byte)[:]
	case d.buf == nil && d.want > minReadBuf:
		d.buf = make([]byte, d.want)
	case d.buf == nil:
		d.buf = smallBufs.Get().(*[minReadBuf]byte)[:]
	case d.start > 0:
		d.end = copy(d.buf, d.buf[d.start:d.end])
		d.start = 0
	default:
		d.grow(2 * len(d.buf))
	}
}

func (d *Decoder) grow(size int) {
	if ceiling := HeaderLen + d.limit + utf8.UTFMax; size > ceiling {
		size = max(ceiling, len(d.buf))
	}
	if size <= len(d.buf) {
		return
	}
	nb := make([]byte, size)
	d.end = copy(nb, d.buf[d.start:d.end])
	d.start = 0
	d.buf = nb
}

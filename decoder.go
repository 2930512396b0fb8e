package logsock

import (
	"errors"
	"io"
	"sync"
	"unicode/utf8"
)

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
	n, err := parseFrameHeader(d.buf[d.start:d.start+HeaderLen], d.order, d.limit)
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
		// back while the stream is quiet (many idle connections must cost
		// little: issue 6), and take one again when data comes.
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

package logsock

import (
	"errors"
	"io"
	"sync"
	"unicode/utf8"
)

// DecoderConfig configures a Decoder; nil, or a zero field, means the
// default.
type DecoderConfig struct {
	Order      ByteOrder // the byte order of the wire's integers
	MaxFrame   int       // the largest message, in bytes; default DefaultMaxFrame
	CodePoints bool      // lengths count code points, as the article's Python client's len(text); MaxFrame counts bytes
}

const (
	minReadBuf = 4 << 10  // first buffer: small, so an idle connection costs little
	maxReadBuf = 64 << 10 // a buffer that reads fill keeps doubling up to this

	truncatedQuote = 64 // bytes of a truncated frame body that its ProtocolError keeps
)

// Decoder reads a handshake and frames from an io.Reader, in one goroutine.
type Decoder struct {
	r          io.Reader
	order      ByteOrder
	limit      int
	codePoints bool
	hdr        int // a frame header's size: headerLen, or header2Len after a v2 hello

	buf        []byte // read-ahead; buf[start:end] is not yet consumed
	start, end int
	want       int          // the size of the buffer given back while idle
	idle       idleReader   // r, if it can wait for data without a buffer
	src        bufferSource // lends the buffers beyond the small one, if set
	lent       bool         // buf is src's
	frameBuf   bool         // buf is src's, for one frame: its reads end at the frame's end
	shook      bool         // the handshake is consumed
	off        int64        // stream offset of buf[start]
	last       int          // where in buf the header of the frame Next returned last begins
	readErr    error        // sticky error from r, reported once the buffer runs dry
	err        error        // sticky protocol error
}

// NewDecoder returns a Decoder that reads from r. A nil cfg means defaults.
func NewDecoder(r io.Reader, cfg *DecoderConfig) *Decoder {
	d := &Decoder{r: r, limit: DefaultMaxFrame, hdr: headerLen}
	d.idle, _ = r.(idleReader)
	if cfg != nil {
		d.order, d.codePoints = cfg.Order, cfg.CodePoints
		if cfg.MaxFrame > 0 {
			d.limit = cfg.MaxFrame
		}
	}
	return d
}

// Handshake reads the handshake that opens the stream, and returns its pid.
func (d *Decoder) Handshake() (int32, error) {
	if err := d.fill(headerLen); err != nil {
		return 0, d.truncated("handshake", err, 0)
	}
	pid := d.order.get(d.buf[d.start:])
	d.consume(headerLen)
	d.shook = true
	return pid, nil
}

// Next returns the next message, valid until the next call; io.EOF at a frame
// boundary; a *ProtocolError, for good, for a bad length or a cut frame.
func (d *Decoder) Next() ([]byte, error) {
	// Fast path: a whole valid frame is already buffered.
	if have := d.end - d.start; have >= d.hdr && !d.codePoints && d.err == nil {
		n := d.order.get(d.buf[d.start:])
		if n >= 0 && int(n) <= d.limit && int(n) <= have-d.hdr {
			d.last = d.start
			p := d.start + d.hdr
			msg := d.buf[p : p+int(n) : p+int(n)]
			d.consume(d.hdr + int(n))
			return msg, nil
		}
	}
	return d.next()
}

func (d *Decoder) next() ([]byte, error) {
	if d.err != nil {
		return nil, d.err
	}
	if err := d.fill(d.hdr); err != nil {
		return nil, d.truncated(d.headerPart(), err, 0)
	}
	n, err := parseFrameHeader(d.buf[d.start:d.start+headerLen], d.order, d.limit)
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
	} else if err := d.fill(d.hdr + size); err != nil {
		return nil, d.truncated("frame body", err, int64(n))
	}
	d.last = d.start
	p := d.start + d.hdr
	msg := d.buf[p : p+size : p+size]
	d.consume(d.hdr + size)
	return msg, nil
}

// opensHello reads the stream's first 4 bytes, and reports whether they
// open a v2 hello rather than a v1 handshake.
func (d *Decoder) opensHello() (bool, error) {
	if err := d.fill(headerLen); err != nil {
		return false, d.truncated("handshake", err, 0)
	}
	return isHello(d.buf[d.start:]), nil
}

// hello reads the v2 hello that the stream opens with (opensHello), and
// from then on reads v2 frames: Next returns their messages, and header2
// their other fields. Its status and error are parseHello's, or a read's.
func (d *Decoder) hello() (hello, uint8, error) {
	if err := d.fill(helloLen); err != nil {
		return hello{}, 0, d.truncated("hello", err, 0)
	}
	size := helloSize(d.buf[d.start:])
	if err := d.fill(size); err != nil {
		return hello{}, 0, d.truncated("hello", err, 0)
	}
	h, status, err := d.order.parseHello(d.buf[d.start : d.start+size])
	d.consume(size)
	// A v2 client counts bytes: CodePoints is the article's v1 client's.
	d.shook, d.hdr, d.codePoints = true, header2Len, false
	return h, status, err
}

// errBadLevel is the cause of a v2 frame whose level is not a severity.
var errBadLevel = errors.New("logsock: level above 7 (debug)")

// header2 returns the fields of the v2 frame, of n message bytes, that
// Next returned last. A level above LevelDebug is a *ProtocolError,
// which Next returns from then on.
func (d *Decoder) header2(n int) (seqLow uint32, unixNano int64, level Level, err error) {
	seqLow, unixNano, l := d.order.getHeader2(d.buf[d.last:])
	if l > uint8(LevelDebug) {
		d.err = &ProtocolError{Part: "v2 frame header", Offset: d.off - int64(d.hdr+n),
			Data: append([]byte(nil), d.buf[d.last:d.last+d.hdr]...), Err: errBadLevel}
		return 0, 0, 0, d.err
	}
	return seqLow, unixNano, Level(l), nil
}

// headerPart names a frame header in a *ProtocolError.
func (d *Decoder) headerPart() string {
	if d.hdr == header2Len {
		return "v2 frame header"
	}
	return "frame header"
}

// Reset makes the Decoder read from r as a new one would, keeping its buffer.
func (d *Decoder) Reset(r io.Reader) {
	d.r = r
	d.idle, _ = r.(idleReader)
	d.start, d.end, d.off = 0, 0, 0
	d.readErr, d.err, d.shook, d.hdr = nil, nil, false, headerLen
}

// buffered returns the number of bytes read from r and not yet consumed.
func (d *Decoder) buffered() int { return d.end - d.start }

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
	pos := d.start + headerLen
	most := headerLen + min(n*utf8.UTFMax, d.limit+utf8.UTFMax) // the frame's bytes, at most
	for i := 0; i < n; i++ {
		if !utf8FullRune(d.buf[pos:d.end]) {
			rel := pos - d.start
			if err := d.fillMore(most); err != nil {
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
		if pos+size-(d.start+headerLen) > d.limit {
			d.err = &ProtocolError{Part: "frame body", Offset: d.off,
				Data:   append([]byte(nil), d.buf[d.start:d.start+headerLen]...),
				Length: int64(n), Limit: d.limit, Err: ErrFrameTooLarge}
			return 0, d.err
		}
		pos += size
	}
	return pos - (d.start + headerLen), nil
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
		// Its start only: a copy of the whole could be MaxFrame bytes on
		// the heap for each client that leaves inside a frame (issue 20:
		// 1,000 of them grew a Server to 264 MiB after they left).
		data = data[d.hdr:min(len(data), d.hdr+truncatedQuote)]
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
		if err := d.fillMore(need); err != nil {
			return err
		}
	}
	return nil
}

// fillMore does one read into the buffer, making room first for need
// bytes from d.start.
func (d *Decoder) fillMore(need int) error {
	if d.readErr != nil {
		return d.readErr
	}
	if d.frameBuf && d.start == d.end {
		// The frame is consumed. Its buffer serves the frames that follow
		// while the stream is busy, unless others wait for memory: mapped
		// anew for each, a frame of 256 KiB cost 1 ms of page faults here
		// (Firecracker), 12x a read into a buffer kept.
		if d.src.keepBuf() {
			d.buf, d.frameBuf = d.buf[:cap(d.buf)], false
		} else {
			d.free()
		}
	}
	if d.end == len(d.buf) {
		if err := d.makeRoom(need); err != nil {
			d.readErr = err
			return err
		}
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
			if err := d.makeRoom(need); err != nil {
				d.readErr = err
				return err
			}
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
			d.busy() // reads fill the buffer: the peer is busy
		}
		return nil
	}
	return err
}

// busy gives a stream whose reads fill its buffer a larger one, so that
// it reads in larger chunks. With a source, that is a buffer of
// maxReadBuf that the source can spare without waiting, and none for the
// start of a frame longer than that, which gets a buffer of its own size
// once it fills this one.
func (d *Decoder) busy() {
	if d.src == nil {
		d.grow(2 * len(d.buf))
		return
	}
	if d.lent {
		return
	}
	h := d.start // the next frame's header: after the handshake, until it is consumed
	if !d.shook {
		h += headerLen
	}
	if !d.codePoints && d.end-h >= d.hdr && int64(d.order.get(d.buf[h:]))+int64(d.hdr) > maxReadBuf {
		return // the frame's own buffer will do
	}
	if b, _ := d.src.takeBuf(maxReadBuf, false, 0); b != nil {
		d.moveTo(b)
	}
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

// bufferSource lends a Decoder the buffers beyond its first, small one: a
// Server's connections take them from the Server's memory budget (see
// memory). A Decoder without one makes its own.
type bufferSource interface {
	// takeBuf returns a buffer of n bytes: maxReadBuf, or the size of a
	// frame longer than that. With wait false it returns nil rather than
	// wait for memory. With wait true it may wait, while the Decoder keeps
	// holding bytes of a buffer lent before; its error ends the stream.
	takeBuf(n int, wait bool, holding int) ([]byte, error)
	// giveBuf takes back a buffer that takeBuf returned.
	giveBuf(b []byte)
	// keepBuf reports whether a buffer lent for a frame may be kept, once
	// the frame is consumed, for the frames that follow, rather than
	// given back at once.
	keepBuf() bool
}

// The small read buffers are shared between idle streams.
var smallBufs = sync.Pool{New: func() any { return new([minReadBuf]byte) }}

// release gives an empty buffer back while the stream is idle, remembering
// its size.
func (d *Decoder) release() {
	d.want = min(len(d.buf), maxReadBuf)
	d.free()
}

// free gives the buffer back, whatever it holds.
func (d *Decoder) free() {
	switch {
	case d.lent:
		d.src.giveBuf(d.buf)
	case len(d.buf) == minReadBuf:
		smallBufs.Put((*[minReadBuf]byte)(d.buf))
	}
	d.buf, d.start, d.end, d.lent, d.frameBuf = nil, 0, 0, false, false
}

// makeRoom frees space at the end of a full buffer for need bytes from
// d.start: by moving the unread bytes to the front when there is a gap
// there, or else by a larger buffer, which happens only when the whole
// buffer holds one frame still arriving. With a source, that buffer is the
// frame's own size, taken at once rather than doubled, so that no buffer
// is left over for the garbage collector.
func (d *Decoder) makeRoom(need int) error {
	switch {
	case d.buf == nil && d.want == maxReadBuf && d.src != nil:
		if b, _ := d.src.takeBuf(maxReadBuf, false, 0); b != nil {
			d.buf, d.lent = b, true
			return nil
		}
		d.buf = smallBufs.Get().(*[minReadBuf]byte)[:]
	case d.buf == nil && d.want > minReadBuf && d.src == nil:
		d.buf = make([]byte, d.want)
	case d.buf == nil:
		d.buf = smallBufs.Get().(*[minReadBuf]byte)[:]
	case d.src != nil && need > len(d.buf):
		return d.lend(need)
	case d.start > 0:
		d.end = copy(d.buf, d.buf[d.start:d.end])
		d.start = 0
	default:
		d.grow(2 * len(d.buf))
	}
	return nil
}

// lend moves the buffered bytes into a buffer from the source with room
// for need bytes, waiting for it if it must.
func (d *Decoder) lend(need int) error {
	n := max(need, maxReadBuf)
	holding := 0
	if d.lent {
		holding = cap(d.buf)
	}
	b, err := d.src.takeBuf(n, true, holding)
	if err != nil {
		return err
	}
	d.moveTo(b)
	d.frameBuf = n > maxReadBuf
	return nil
}

// moveTo moves the buffered bytes into b, lent by the source, and gives
// the old buffer back.
func (d *Decoder) moveTo(b []byte) {
	n := copy(b, d.buf[d.start:d.end])
	d.free()
	d.buf, d.end, d.lent = b, n, true
}

func (d *Decoder) grow(size int) {
	if ceiling := d.hdr + d.limit + utf8.UTFMax; size > ceiling {
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

//go:build unix

package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/logsock/logsock"
)

// The appenders below format a record by hand, without reflection: the
// collector this program replaced spent most of its time in
// encoding/json.Marshal and one write(2) a record (issue 12).

// formatter formats records as lines of text or JSON. It is not safe for
// concurrent use: the output calls it under its lock.
type formatter struct {
	json    bool   // JSON Lines; text otherwise
	jsonMsg bool   // with json: a message that is a JSON object is one in the line
	run     string // this run's id, in every record (see newRunID); set before the first
	clock   clock
	logged  clock       // for the client's times, which a second apart from the receive times would make clock format its prefix each time
	conns   connCache   // the fields of each connection, formatted once
	session session     // the v2 fields of the last session formatted
	flags   [256][]byte // the flags of a record, formatted once for each value
	msg     msgParser   // for jsonMsg
}

func newFormatter(jsonOut, jsonMsg bool) *formatter {
	f := &formatter{json: jsonOut, jsonMsg: jsonMsg}
	f.conns.build = f.appendConn
	return f
}

// trimNewline drops one trailing newline, which slog, log and zap end
// every record with: printed, it would be an empty line in text and a
// "\n" in every JSON msg (issue 12).
func trimNewline(msg []byte) []byte {
	if n := len(msg); n > 0 && msg[n-1] == '\n' {
		return msg[:n-1]
	}
	return msg
}

// append appends rec's line, newline included, to dst.
func (f *formatter) append(dst []byte, rec *logsock.Record) []byte {
	msg := trimNewline(rec.Msg)
	if f.json {
		dst = append(dst, `{"time":"`...)
		dst = f.clock.append(dst, rec.Time, 9)
		if rec.Seq != 0 {
			dst = f.appendV2(dst, rec)
		} else {
			dst = append(dst, '"')
		}
		dst = append(dst, f.conns.get(rec)...)
		if rec.WriterPid != 0 {
			dst = append(dst, `,"writer_pid":`...)
			dst = strconv.AppendInt(dst, int64(rec.WriterPid), 10)
		}
		if rec.Flags != 0 {
			dst = append(dst, `,"flags":`...)
			dst = append(dst, f.flagsOf(rec.Flags)...)
		}
		dst = append(dst, `,"msg":`...)
		dst = f.appendMsg(dst, msg, rec.Flags)
		if rec.Flags&logsock.FlagInvalidUTF8 != 0 {
			// The exact bytes, trailing newline included: msg shows
			// them with U+FFFD in place of the bytes that are not UTF-8.
			dst = append(dst, `,"msg_base64":"`...)
			dst = base64.StdEncoding.AppendEncode(dst, rec.Msg)
			dst = append(dst, '"')
		}
		return append(dst, "}\n"...)
	}
	dst = f.clock.append(dst, rec.Time, 9)
	if rec.Seq != 0 {
		dst = f.appendV2(dst, rec)
	}
	dst = append(dst, f.conns.get(rec)...)
	if rec.WriterPid != 0 {
		dst = append(dst, " writer="...)
		dst = strconv.AppendInt(dst, int64(rec.WriterPid), 10)
	}
	if rec.Flags != 0 {
		dst = append(dst, " flags="...)
		dst = append(dst, f.flagsOf(rec.Flags)...)
	}
	dst = append(dst, ' ')
	dst = appendText(dst, msg)
	return append(dst, '\n')
}

// appendV2 appends the fields of a v2 client's record (issue 19), just
// after the receive time: in JSON, where that time's closing quote is
// left to it,
//
//	","client_time":"T","session":"HEX","seq":N,"level":"err","tag":"svc"
//
// and in text
//
//	client_time=T session=HEX/N level=err tag=svc
//
// At that place, which a v1 record's run follows, a message or an
// address cannot forge them: the tail scan (resume.go) reads them there.
// The tag needs no escape: a v2 hello's tag is printable ASCII without
// a space, and the Server refuses any other.
func (f *formatter) appendV2(dst []byte, rec *logsock.Record) []byte {
	if f.json {
		dst = append(dst, `","client_time":"`...)
	} else {
		dst = append(dst, " client_time="...)
	}
	dst = f.logged.append(dst, rec.Logged, 9)
	s := f.session.of(rec, f.json)
	dst = append(dst, s.prefix...)
	dst = appendUint(dst, rec.Seq)
	if int(rec.Level) < len(s.levels) {
		return append(dst, s.level(rec.Level, f.json)...)
	}
	return append(dst, levelTag(nil, rec.Level, rec.Tag, f.json)...) // never: the Server checks levels
}

// appendMsg appends msg as a JSON string, or, with -json-msg, as the JSON
// object that it is if every common parser takes it (see msgParser).
func (f *formatter) appendMsg(dst, msg []byte, flags logsock.Flags) []byte {
	if f.jsonMsg && flags&logsock.FlagInvalidUTF8 == 0 {
		if out, ok := f.msg.appendObject(dst, msg); ok {
			return out
		}
	}
	return appendJSONString(dst, msg)
}

// appendConn appends the fields that are the same for every record of
// rec's connection, this run's id first: connection ids start at 1 at
// every start, and a file that several runs appended to has a "conn 2" of
// each (issue 20).
func (f *formatter) appendConn(dst []byte, rec *logsock.Record) []byte {
	remote := remoteString(rec.Remote)
	if f.json {
		dst = append(dst, `,"run":"`...)
		dst = append(dst, f.run...)
		dst = append(dst, `","conn":`...)
		dst = strconv.AppendUint(dst, rec.Conn, 10)
		dst = append(dst, `,"pid":`...)
		dst = strconv.AppendInt(dst, int64(rec.Pid), 10)
		if remote != "" {
			dst = append(dst, `,"remote":`...)
			dst = appendJSONString(dst, []byte(remote))
		}
		if rec.PeerPid != 0 {
			dst = append(dst, `,"peer_pid":`...)
			dst = strconv.AppendInt(dst, int64(rec.PeerPid), 10)
			dst = append(dst, `,"peer_uid":`...)
			dst = strconv.AppendUint(dst, uint64(rec.PeerUid), 10)
			dst = append(dst, `,"peer_gid":`...)
			dst = strconv.AppendUint(dst, uint64(rec.PeerGid), 10)
		}
		return dst
	}
	dst = append(dst, " run="...)
	dst = append(dst, f.run...)
	dst = append(dst, " conn="...)
	dst = strconv.AppendUint(dst, rec.Conn, 10)
	dst = append(dst, " pid="...)
	dst = strconv.AppendInt(dst, int64(rec.Pid), 10)
	if remote != "" {
		dst = append(dst, " remote="...)
		dst = appendText(dst, []byte(remote))
	}
	if rec.PeerPid != 0 {
		dst = append(dst, " peer="...)
		dst = strconv.AppendInt(dst, int64(rec.PeerPid), 10)
		dst = append(dst, " uid="...)
		dst = strconv.AppendUint(dst, uint64(rec.PeerUid), 10)
		dst = append(dst, " gid="...)
		dst = strconv.AppendUint(dst, uint64(rec.PeerGid), 10)
	}
	return dst
}

// flagsOf returns flags formatted: ["a","b"] in JSON, a|b in text.
func (f *formatter) flagsOf(flags logsock.Flags) []byte {
	if b := f.flags[flags]; b != nil {
		return b
	}
	names := flags.String()
	var b []byte
	if f.json {
		b = append(b, '[')
		for i, name := range strings.Split(names, "|") {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, []byte(name))
		}
		b = append(b, ']')
	} else {
		b = []byte(names)
	}
	f.flags[flags] = b
	return b
}

// remoteString returns the address a connection came from, or "" where it
// names nothing: a Unix socket's client is usually unnamed, which Go
// reports as "" or "@".
func remoteString(a net.Addr) string {
	switch a := a.(type) {
	case nil:
		return ""
	case *net.UnixAddr:
		if a == nil || a.Name == "@" {
			return ""
		}
		return a.Name
	case *net.TCPAddr:
		if a == nil {
			return ""
		}
	}
	return a.String()
}

// connCache keeps what build made of each connection's first record, until
// drop: the fields of a connection do not change, and formatting its
// remote address allocates. The last connection asked for is found without
// the map, as one busy connection is the common case.
type connCache struct {
	build func(dst []byte, rec *logsock.Record) []byte
	last  uint64 // 0, or the connection whose bytes are lastB
	lastB []byte
	m     map[uint64][]byte
}

func (c *connCache) get(rec *logsock.Record) []byte {
	if rec.Conn == c.last && c.last != 0 {
		return c.lastB
	}
	b, ok := c.m[rec.Conn]
	if !ok {
		if c.m == nil {
			c.m = make(map[uint64][]byte)
		}
		b = c.build(nil, rec)
		c.m[rec.Conn] = b
	}
	c.last, c.lastB = rec.Conn, b
	return b
}

// drop forgets connection id, which has ended: ids are never reused.
func (c *connCache) drop(id uint64) {
	delete(c.m, id)
	if c.last == id {
		c.last, c.lastB = 0, nil
	}
}

// session keeps the v2 fields of the last session formatted: a run of
// records is most often one session's, and writing each field apart
// (the hex alone was 5% of logsockd's CPU with acknowledged clients)
// made a v2 line cost half again a v1 line's.
type session struct {
	id     logsock.SessionID
	tag    string
	set    bool
	prefix []byte // ","session":"HEX","seq": or " session=HEX/"
	levels [logsock.LevelDebug + 1][]byte
}

// of returns the fields of rec's session, made anew if it is not the last.
func (s *session) of(rec *logsock.Record, json bool) *session {
	if s.set && rec.Session == s.id && rec.Tag == s.tag {
		return s
	}
	// Made in the buffers of the last, so that records of sessions that
	// alternate cost no allocation.
	s.id, s.tag, s.set = rec.Session, rec.Tag, true
	for l := range s.levels {
		s.levels[l] = s.levels[l][:0]
	}
	s.prefix = s.prefix[:0]
	if json {
		s.prefix = append(s.prefix, `","session":"`...)
		s.prefix = hex.AppendEncode(s.prefix, rec.Session[:])
		s.prefix = append(s.prefix, `","seq":`...)
	} else {
		s.prefix = append(s.prefix, " session="...)
		s.prefix = hex.AppendEncode(s.prefix, rec.Session[:])
		s.prefix = append(s.prefix, '/')
	}
	return s
}

// level returns the fields that follow the number: the level, and the tag.
func (s *session) level(l logsock.Level, json bool) []byte {
	if len(s.levels[l]) == 0 {
		s.levels[l] = levelTag(s.levels[l], l, s.tag, json)
	}
	return s.levels[l]
}

// levelTag appends the level's and the tag's fields.
func levelTag(dst []byte, l logsock.Level, tag string, json bool) []byte {
	if json {
		dst = append(dst, `,"level":"`...)
		dst = append(dst, l.String()...)
		dst = append(dst, `","tag":"`...)
		dst = append(dst, tag...)
		return append(dst, '"')
	}
	dst = append(dst, " level="...)
	dst = append(dst, l.String()...)
	dst = append(dst, " tag="...)
	return append(dst, tag...)
}

// clock formats times in UTC as RFC 3339 with a fixed number of fraction
// digits (sortable as text), formatting the part up to the second once a
// second: records come in bursts that share their second.
type clock struct {
	sec    int64
	prefix []byte // "2006-01-02T15:04:05." of sec, or empty
}

// append appends t with digits (1 to 9) digits of fraction, and "Z".
func (c *clock) append(dst []byte, t time.Time, digits int) []byte {
	if sec := t.Unix(); sec != c.sec || len(c.prefix) == 0 {
		c.sec = sec
		c.prefix = t.UTC().AppendFormat(c.prefix[:0], "2006-01-02T15:04:05.")
	}
	dst = append(dst, c.prefix...)
	frac := uint64(t.Nanosecond())
	for range 9 - digits {
		frac /= 10
	}
	return append(appendDigits(dst, frac, digits), 'Z')
}

// digitPairs holds "00" to "99".
const digitPairs = "00010203040506070809" +
	"10111213141516171819" +
	"20212223242526272829" +
	"30313233343536373839" +
	"40414243444546474849" +
	"50515253545556575859" +
	"60616263646566676869" +
	"70717273747576777879" +
	"80818283848586878889" +
	"90919293949596979899"

// appendDigits appends the last n decimal digits of v, zeros leading, two
// a step, in place: a loop a digit took 7% of logsockd's CPU with
// acknowledged clients, which have two times a record, and strconv's
// copy from its own buffer, and the shift that dropped a leading digit,
// took as much again.
func appendDigits(dst []byte, v uint64, n int) []byte {
	end := len(dst) + n
	dst = slices.Grow(dst, n)[:end]
	i := end
	for ; i-2 >= end-n; i -= 2 {
		d := v % 100 * 2
		v /= 100
		dst[i-2], dst[i-1] = digitPairs[d], digitPairs[d+1]
	}
	if i > end-n {
		dst[i-1] = byte('0' + v%10)
	}
	return dst
}

// appendUint appends v in decimal, as strconv.AppendUint does without a
// copy.
func appendUint(dst []byte, v uint64) []byte {
	n := 1
	for p := uint64(10); n < 20 && v >= p; p *= 10 {
		n++
	}
	return appendDigits(dst, v, n)
}

const hexDigits = "0123456789abcdef"

// escaper writes a message's bytes in one format: the bytes that plain
// passes stand for themselves, and escape writes each rune that may not.
type escaper struct {
	safe [utf8.RuneSelf]bool // the ASCII bytes that stand for themselves
	// c1 and c2 are two printable ASCII bytes that are not safe, each in
	// every byte of a word, for plain's scan.
	c1, c2 uint64
	// escape appends the rune r, whose bytes are raw: its escape, or raw.
	// A byte that is not UTF-8 comes as utf8.RuneError with one byte.
	escape func(dst, raw []byte, r rune) []byte
}

func newEscaper(c1, c2 byte, safe func(b byte) bool, escape func(dst, raw []byte, r rune) []byte) *escaper {
	e := &escaper{c1: uint64(c1) * ones, c2: uint64(c2) * ones, escape: escape}
	for b := range byte(utf8.RuneSelf) {
		e.safe[b] = safe(b)
	}
	return e
}

// plain returns how many bytes s starts with that stand for themselves.
// It looks at 8 bytes at a time first, since most messages have no byte
// that needs care: byte by byte, the scan cost 80 ns of the 110 ns it took
// to format a record of 100 bytes; 8 at a time, the record takes 63 ns
// (BenchmarkFormat).
func (e *escaper) plain(s []byte) int {
	i := 0
	for {
		for ; i+8 <= len(s); i += 8 {
			x := binary.LittleEndian.Uint64(s[i:])
			if (x&high | belowByte(x, 0x20) | zeroByte(x^e.c1) | zeroByte(x^e.c2)) != 0 {
				break
			}
		}
		// Byte by byte through the word that has a byte to look at (a
		// tab in text is safe), or the last few bytes.
		for end := min(i+8, len(s)); i < end; i++ {
			if b := s[i]; b >= utf8.RuneSelf || !e.safe[b] {
				return i
			}
		}
		if i == len(s) {
			return i
		}
	}
}

// append appends s, escaped.
func (e *escaper) append(dst, s []byte) []byte {
	for len(s) > 0 {
		n := e.plain(s)
		dst = append(dst, s[:n]...)
		if s = s[n:]; len(s) == 0 {
			break
		}
		r, size := rune(s[0]), 1
		if r >= utf8.RuneSelf {
			r, size = utf8.DecodeRune(s)
		}
		dst = e.escape(dst, s[:size], r)
		s = s[size:]
	}
	return dst
}

const (
	ones = 0x0101010101010101
	high = 0x8080808080808080
)

// zeroByte has the high bit set in a byte of x that is zero, and maybe in
// bytes after it; it is 0 if no byte is (the borrow runs upwards only).
func zeroByte(x uint64) uint64 { return (x - ones) &^ x & high }

// belowByte has the high bit set in a byte of x below n (n <= 0x80), and
// maybe in bytes after it; it is 0 if no byte is.
func belowByte(x, n uint64) uint64 { return (x - n*ones) &^ x & high }

// jsonEscaper writes a JSON string's contents as encoding/json writes a
// Go string (without its HTML escapes): each byte that is not UTF-8
// becomes U+FFFD, and U+2028 and U+2029, which end a line in JavaScript,
// are escaped.
var jsonEscaper = newEscaper('"', '\\', func(b byte) bool { return b >= 0x20 && b != '"' && b != '\\' },
	func(dst, raw []byte, r rune) []byte {
		switch {
		case r == '"' || r == '\\':
			return append(dst, '\\', byte(r))
		case r == '\n':
			return append(dst, '\\', 'n')
		case r == '\r':
			return append(dst, '\\', 'r')
		case r == '\t':
			return append(dst, '\\', 't')
		case r < 0x20:
			return append(dst, '\\', 'u', '0', '0', hexDigits[r>>4], hexDigits[r&0xF])
		case r == utf8.RuneError && len(raw) == 1:
			return append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			return append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		}
		return append(dst, raw...)
	})

// textEscaper writes a message as it is, but for what would break the
// line or drive a terminal: control characters (except tab) become \n,
// \r or \xHH, the C1 controls and U+2028 and U+2029 \uHHHH, and each
// byte that is not UTF-8 \xHH. A backslash stays as it is, so the escapes
// are for reading, not for reversing: -json keeps the exact bytes.
var textEscaper = newEscaper(0x7f, 0x7f, func(b byte) bool { return b >= 0x20 && b != 0x7f || b == '\t' },
	func(dst, raw []byte, r rune) []byte {
		switch {
		case r == '\n':
			return append(dst, '\\', 'n')
		case r == '\r':
			return append(dst, '\\', 'r')
		case r < 0x20 && r != '\t' || r == 0x7f || r == utf8.RuneError && len(raw) == 1:
			return append(dst, '\\', 'x', hexDigits[raw[0]>>4], hexDigits[raw[0]&0xF])
		case r >= 0x80 && r < 0xa0 || r == '\u2028' || r == '\u2029':
			return append(dst, '\\', 'u', hexDigits[r>>12], hexDigits[r>>8&0xF], hexDigits[r>>4&0xF], hexDigits[r&0xF])
		}
		return append(dst, raw...)
	})

// appendJSONString appends s as a JSON string (see jsonEscaper).
func appendJSONString(dst, s []byte) []byte {
	dst = append(dst, '"')
	dst = jsonEscaper.append(dst, s)
	return append(dst, '"')
}

// appendText appends msg for a text line (see textEscaper).
func appendText(dst, msg []byte) []byte { return textEscaper.append(dst, msg) }

// newRunID returns an id for this run of logsockd, for every record
// (see appendConn): 16 hexadecimal digits, 64 random bits, so that two
// runs whose records share a file have the same id with a chance of
// about n²/2^65 for n runs.
func newRunID() string {
	var b [8]byte
	rand.Read(b[:]) // never fails, by its documentation
	return hex.EncodeToString(b[:])
}

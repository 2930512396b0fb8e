package main

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"net"
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
	json    bool // JSON Lines; text otherwise
	jsonMsg bool // with json: a message that is a JSON object is one in the line
	clock   clock
	conns   connCache     // the fields of each connection, formatted once
	flags   [256][]byte   // the flags of a record, formatted once for each value
	msgBuf  *bytes.Buffer // for json.Compact, which writes only to a Buffer
}

func newFormatter(jsonOut, jsonMsg bool) *formatter {
	f := &formatter{json: jsonOut, jsonMsg: jsonMsg, msgBuf: new(bytes.Buffer)}
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
		dst = append(dst, '"')
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

// appendMsg appends msg as a JSON string, or, with -json-msg, as the JSON
// object that it is.
func (f *formatter) appendMsg(dst, msg []byte, flags logsock.Flags) []byte {
	if f.jsonMsg && len(msg) > 0 && msg[0] == '{' && flags&logsock.FlagInvalidUTF8 == 0 {
		// Compact both checks the object and puts it on one line; on an
		// error it writes nothing.
		f.msgBuf.Reset()
		if json.Compact(f.msgBuf, msg) == nil {
			return append(dst, f.msgBuf.Bytes()...)
		}
	}
	return appendJSONString(dst, msg)
}

// appendConn appends the fields that are the same for every record of
// rec's connection.
func (f *formatter) appendConn(dst []byte, rec *logsock.Record) []byte {
	remote := remoteString(rec.Remote)
	if f.json {
		dst = append(dst, `,"conn":`...)
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
	frac := t.Nanosecond()
	for range 9 - digits {
		frac /= 10
	}
	n := len(dst)
	dst = append(dst, "000000000"[:digits]...)
	for i := len(dst) - 1; i >= n; i-- {
		dst[i] = byte('0' + frac%10)
		frac /= 10
	}
	return append(dst, 'Z')
}

// jsonSafe marks the ASCII bytes that stand for themselves in a JSON
// string.
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for b := range utf8.RuneSelf {
		t[b] = b >= 0x20 && b != '"' && b != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// The scans below look at 8 bytes at a time for one that needs care,
// since most messages have none: the byte-by-byte loops cost 80 ns of the
// 110 ns it took to format a record of 100 bytes (BenchmarkFormat).
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

// plainJSON returns how many bytes s starts with, in steps of 8, that
// stand for themselves in a JSON string: ASCII, not a control character,
// '"' or '\\'.
func plainJSON(s []byte) int {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := binary.LittleEndian.Uint64(s[i:])
		if (x&high | belowByte(x, 0x20) | zeroByte(x^'"'*ones) | zeroByte(x^'\\'*ones)) != 0 {
			break
		}
	}
	return i
}

// plainText returns how many bytes s starts with, in steps of 8, that
// appendText writes as they are, tab aside: ASCII, not a control
// character.
func plainText(s []byte) int {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := binary.LittleEndian.Uint64(s[i:])
		if (x&high | belowByte(x, 0x20) | zeroByte(x^0x7f*ones)) != 0 {
			break
		}
	}
	return i
}

// appendJSONString appends s as a JSON string, as encoding/json writes a Go
// string (without its HTML escapes): each byte that is not UTF-8 becomes
// U+FFFD, and U+2028 and U+2029, which end a line in JavaScript, are
// escaped.
func appendJSONString(dst, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if i += plainJSON(s[i:]); i == len(s) {
			break
		}
		if b := s[i]; b < utf8.RuneSelf {
			if jsonSafe[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendText appends msg as it is, but for what would break the line or
// drive a terminal: control characters but tab become \n, \r or \xHH,
// the C1 controls and U+2028 and U+2029 \uHHHH, and each byte that is not
// UTF-8 \xHH. A backslash stays as it is, so the escapes are for reading,
// not for reversing: -json keeps the exact bytes.
func appendText(dst, msg []byte) []byte {
	start := 0
	for i := 0; i < len(msg); {
		if i += plainText(msg[i:]); i == len(msg) {
			break
		}
		b := msg[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != 0x7f || b == '\t' {
				i++
				continue
			}
			dst = append(dst, msg[start:i]...)
			switch b {
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			default:
				dst = append(dst, '\\', 'x', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(msg[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, msg[start:i]...)
			dst = append(dst, '\\', 'x', hexDigits[b>>4], hexDigits[b&0xF])
		case r < 0xa0 || r == '\u2028' || r == '\u2029':
			dst = append(dst, msg[start:i]...)
			dst = append(dst, '\\', 'u')
			dst = append(dst, hexDigits[r>>12], hexDigits[r>>8&0xF], hexDigits[r>>4&0xF], hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	return append(dst, msg[start:]...)
}

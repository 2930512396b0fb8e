//go:build unix

package main

import (
	"bytes"
	"slices"
	"strconv"
	"unicode/utf8"
)

// maxMsgDepth is the deepest nesting of arrays and objects that -json-msg
// embeds, the message's own object counting 1. jq 1.6 refuses objects
// nested more than 128 deep (arrays 256, as measured), and serde_json,
// which Vector parses with, maps and arrays more than 128 deep by
// default: a line of issue 20 with an object 3,000 deep was lost to both.
// 64 leaves them room for the line's own level and for whatever wraps the
// record downstream.
const maxMsgDepth = 64

// maxKeptKeys bounds the key buffers that a msgParser keeps between
// messages: one message with many keys must not pin its memory.
const maxKeptKeys = 64 << 10

// msgParser checks that a message is a JSON object that the common
// parsers (jq 1.6, Python's json, serde_json, Go's encoding/json) all read
// as the same value, and appends it without its insignificant white
// space. On top of RFC 8259's grammar it refuses what RFC 7493 (I-JSON)
// forbids and those parsers disagree on or refuse: lone surrogates in
// \u escapes (jq 1.6 refuses \ud800, turns \udc00 into U+FFFD and Python
// keeps it; issue 20), bytes that are not UTF-8, duplicate names (jq and
// Python keep the last, encoding/json/v2 refuses), numbers beyond
// float64's range (jq 1.6 makes 1e400 1.8e308, Python inf, and refuses an
// integer of more than 4,300 digits), and nesting deeper than maxMsgDepth.
// It uses no reflection and allocates nothing once its buffers have grown.
//
// It is not safe for concurrent use: the formatter's owner serialises it.
type msgParser struct {
	src []byte
	i   int    // next byte of src
	dst []byte // the compacted object so far
	// The names of the objects open, decoded (escapes resolved, so that
	// "a" and "\u0061" are one name), for the duplicate check: keys holds
	// their bytes, names their ends in keys, in order.
	keys  []byte
	names []int
}

// appendObject appends msg, compacted, to dst if msg is one JSON object
// that parses as described on msgParser, with JSON white space around it
// at most; otherwise it returns dst unchanged and false.
func (p *msgParser) appendObject(dst, msg []byte) ([]byte, bool) {
	p.src, p.i, p.dst = msg, 0, dst
	p.space()
	ok := p.peek() == '{' && p.object(1)
	if ok {
		p.space()
		ok = p.i == len(p.src)
	}
	out := p.dst
	p.src, p.dst = nil, nil
	p.keys, p.names = p.keys[:0], p.names[:0]
	if cap(p.keys) > maxKeptKeys {
		p.keys = nil
	}
	if cap(p.names) > maxKeptKeys/8 {
		p.names = nil
	}
	if !ok {
		return dst, false
	}
	return out, true
}

// peek returns the next byte, or 0 at the end.
func (p *msgParser) peek() byte {
	if p.i < len(p.src) {
		return p.src[p.i]
	}
	return 0
}

// space skips JSON white space.
func (p *msgParser) space() {
	for p.i < len(p.src) {
		switch p.src[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// value parses a value at nesting depth (of its enclosing container).
func (p *msgParser) value(depth int) bool {
	switch c := p.peek(); {
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		return p.str(false)
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		return p.literal("null")
	}
	return false
}

// object parses an object whose '{' is next, at nesting depth.
func (p *msgParser) object(depth int) bool {
	first, keysStart := len(p.names), len(p.keys)
	ok := p.elements(depth, '}', func() bool {
		if p.peek() != '"' || !p.str(true) {
			return false
		}
		p.names = append(p.names, len(p.keys))
		p.space()
		if p.peek() != ':' {
			return false
		}
		p.i++
		p.dst = append(p.dst, ':')
		p.space()
		return p.value(depth)
	}) && p.uniqueNames(keysStart, first)
	p.names, p.keys = p.names[:first], p.keys[:keysStart]
	return ok
}

// uniqueNames reports whether the names of the object whose first name is
// names[first], starting at keys[start], are all different.
func (p *msgParser) uniqueNames(start, first int) bool {
	ends := p.names[first:]
	name := func(i int) []byte {
		from := start
		if i > 0 {
			from = ends[i-1]
		}
		return p.keys[from:ends[i]]
	}
	if len(ends) <= 8 {
		for i := 1; i < len(ends); i++ {
			for j := range i {
				if bytes.Equal(name(i), name(j)) {
					return false
				}
			}
		}
		return true
	}
	// Many names: sort their indexes by name and compare neighbours, in
	// O(n log n), where pairs would take a hostile message of 100,000
	// names 10^10 comparisons. The indexes go at the end of names, which
	// is truncated after.
	idx := len(p.names)
	for i := range ends {
		p.names = append(p.names, i)
	}
	ends = p.names[first : first+len(ends)] // append may have moved it
	order := p.names[idx:]
	slices.SortFunc(order, func(a, b int) int { return bytes.Compare(name(a), name(b)) })
	for i := 1; i < len(order); i++ {
		if bytes.Equal(name(order[i]), name(order[i-1])) {
			return false
		}
	}
	return true
}

// array parses an array whose '[' is next, at nesting depth.
func (p *msgParser) array(depth int) bool {
	return p.elements(depth, ']', func() bool { return p.value(depth) })
}

// elements parses the members of the object or array whose opening byte
// is next, at nesting depth, each with member, up to the closing byte end.
func (p *msgParser) elements(depth int, end byte, member func() bool) bool {
	if depth > maxMsgDepth {
		return false
	}
	p.dst = append(p.dst, p.src[p.i])
	p.i++
	p.space()
	if p.peek() == end {
		p.i++
		p.dst = append(p.dst, end)
		return true
	}
	for {
		if !member() {
			return false
		}
		p.space()
		switch p.peek() {
		case ',':
			p.i++
			p.dst = append(p.dst, ',')
			p.space()
		case end:
			p.i++
			p.dst = append(p.dst, end)
			return true
		default:
			return false
		}
	}
}

// str parses a string whose '"' is next; a key's decoded bytes also go to
// p.keys. It copies the string as it came, escapes included, but writes
// U+2028 and U+2029 as escapes, as appendJSONString does: they end a line
// in JavaScript.
func (p *msgParser) str(key bool) bool {
	p.i++
	p.dst = append(p.dst, '"')
	for {
		// The run of bytes that need no look is jsonEscaper's: ASCII
		// but for controls, '"' and '\'.
		n := jsonEscaper.plain(p.src[p.i:])
		run := p.src[p.i : p.i+n]
		p.dst = append(p.dst, run...)
		if key {
			p.keys = append(p.keys, run...)
		}
		p.i += n
		if p.i == len(p.src) {
			return false
		}
		switch c := p.src[p.i]; {
		case c == '"':
			p.i++
			p.dst = append(p.dst, '"')
			return true
		case c == '\\':
			if !p.escape(key) {
				return false
			}
		case c < 0x20:
			return false // a raw control character: RFC 8259 wants it escaped
		default:
			r, size := utf8.DecodeRune(p.src[p.i:])
			if r == utf8.RuneError && size == 1 {
				return false
			}
			raw := p.src[p.i : p.i+size]
			if r == '\u2028' || r == '\u2029' {
				p.dst = append(p.dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			} else {
				p.dst = append(p.dst, raw...)
			}
			if key {
				p.keys = append(p.keys, raw...)
			}
			p.i += size
		}
	}
}

// escape parses the escape that starts at src[i], '\'.
func (p *msgParser) escape(key bool) bool {
	if p.i+1 >= len(p.src) {
		return false
	}
	var r rune
	n := 2
	switch c := p.src[p.i+1]; c {
	case '"', '\\', '/':
		r = rune(c)
	case 'b':
		r = '\b'
	case 'f':
		r = '\f'
	case 'n':
		r = '\n'
	case 'r':
		r = '\r'
	case 't':
		r = '\t'
	case 'u':
		var ok bool
		if r, ok = hex4(p.src[p.i+2:]); !ok {
			return false
		}
		n = 6
		switch {
		case r >= 0xDC00 && r <= 0xDFFF:
			return false // a low surrogate with no high one before it
		case r >= 0xD800 && r <= 0xDBFF:
			// A high surrogate: a low one must follow, as \uXXXX.
			rest := p.src[p.i+6:]
			if len(rest) < 2 || rest[0] != '\\' || rest[1] != 'u' {
				return false
			}
			lo, ok := hex4(rest[2:])
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return false
			}
			r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
			n = 12
		}
	default:
		return false
	}
	p.dst = append(p.dst, p.src[p.i:p.i+n]...)
	if key {
		p.keys = utf8.AppendRune(p.keys, r)
	}
	p.i += n
	return true
}

// hex4 reads four hexadecimal digits.
func hex4(s []byte) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// maxPlainDigits is the longest number without an exponent that cannot
// exceed float64's range (1.8e308): only a longer one, or one with an
// exponent, is parsed to tell.
const maxPlainDigits = 300

// number parses a number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?,
// within float64's range.
func (p *msgParser) number() bool {
	start := p.i
	if p.peek() == '-' {
		p.i++
	}
	switch c := p.peek(); {
	case c == '0':
		p.i++
	case c >= '1' && c <= '9':
		p.digits()
	default:
		return false
	}
	if p.peek() == '.' {
		p.i++
		if p.digits() == 0 {
			return false
		}
	}
	exp := false
	if c := p.peek(); c == 'e' || c == 'E' {
		exp = true
		p.i++
		if c := p.peek(); c == '+' || c == '-' {
			p.i++
		}
		if p.digits() == 0 {
			return false
		}
	}
	lit := p.src[start:p.i]
	if exp || len(lit) > maxPlainDigits {
		// ParseFloat says ErrRange for what overflows to ±Inf; a number
		// that underflows comes back as 0 or a subnormal, with no error,
		// and the parsers read it so too.
		if _, err := strconv.ParseFloat(string(lit), 64); err != nil {
			return false
		}
	}
	p.dst = append(p.dst, lit...)
	return true
}

// digits skips decimal digits and returns how many.
func (p *msgParser) digits() int {
	start := p.i
	for p.i < len(p.src) && p.src[p.i] >= '0' && p.src[p.i] <= '9' {
		p.i++
	}
	return p.i - start
}

// literal parses true, false or null.
func (p *msgParser) literal(lit string) bool {
	if len(p.src)-p.i < len(lit) || string(p.src[p.i:p.i+len(lit)]) != lit {
		return false
	}
	p.i += len(lit)
	p.dst = append(p.dst, lit...)
	return true
}

package logsock

import (
	"errors"
	"math"
	"strings"
	"testing"
)

var orders = []ByteOrder{LittleEndian, BigEndian}

func TestHelloMagicIsNoPid(t *testing.T) {
	for _, o := range orders {
		if pid := o.get(helloMagic[:]); pid >= 0 {
			t.Errorf("%v: a v1 reader takes the magic for pid %d; want a negative one", o, pid)
		}
	}
}

func TestHelloRoundTrip(t *testing.T) {
	for _, o := range orders {
		h := hello{pid: 4242, next: 1<<40 + 7, tag: "svc-api"}
		copy(h.session[:], "0123456789abcdef")
		b := o.appendHello([]byte("x"), &h)[1:]
		if len(b) != helloLen+len(h.tag) || helloSize(b) != len(b) {
			t.Fatalf("%v: hello of %d bytes, helloSize %d; want %d", o, len(b), helloSize(b), helloLen+len(h.tag))
		}
		if !isHello(b) {
			t.Fatalf("%v: isHello false on a hello", o)
		}
		got, status, err := o.parseHello(b)
		if err != nil || status != helloAccepted || got != h {
			t.Fatalf("%v: parseHello = %+v, %d, %v; want %+v", o, got, status, err, h)
		}
	}
}

func TestHelloRefused(t *testing.T) {
	good := hello{pid: 1, next: 1, tag: "t"}
	copy(good.session[:], "0123456789abcdef")
	cases := []struct {
		name   string
		edit   func(b []byte) []byte
		status uint8
		says   string
	}{
		{"version", func(b []byte) []byte { b[4] = 3; return b }, helloUnsupported, "version 3"},
		{"flags", func(b []byte) []byte { b[5] = 1; return b }, helloUnsupported, "flags"},
		{"reserved", func(b []byte) []byte { b[7] = 1; return b }, helloBad, "reserved"},
		{"zero session", func(b []byte) []byte { clear(b[12:28]); return b }, helloBad, "session"},
		{"frame 0", func(b []byte) []byte { clear(b[28:36]); return b }, helloBad, "numbered 0"},
		{"empty tag", func(b []byte) []byte { b[6] = 0; return b[:helloLen] }, helloBad, "tag"},
		{"tag space", func(b []byte) []byte { b[helloLen] = ' '; return b }, helloBad, "printable"},
		{"tag too long", func(b []byte) []byte {
			b[6] = maxTagLen + 1
			return append(b[:helloLen], strings.Repeat("t", maxTagLen+1)...)
		}, helloBad, "want 1-48"},
		{"magic", func(b []byte) []byte { b[1] = 'X'; return b }, helloBad, "magic"},
	}
	for _, c := range cases {
		b := c.edit(LittleEndian.appendHello(nil, &good))
		_, status, err := LittleEndian.parseHello(b)
		if status != c.status || !errors.Is(err, errHello) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: status %d, %v; want status %d and an error that says %q", c.name, status, err, c.status, c.says)
		}
	}
}

func TestServerHello(t *testing.T) {
	for _, o := range orders {
		want := serverHello{maxFrame: 1 << 20, acked: math.MaxUint64 - 1}
		b := o.appendServerHello(nil, want)
		if len(b) != serverHelloLen {
			t.Fatalf("%d bytes; want %d", len(b), serverHelloLen)
		}
		got, err := o.parseServerHello(b)
		if err != nil || got != want {
			t.Fatalf("%v: %+v, %v; want %+v", o, got, err, want)
		}
		for _, status := range []uint8{helloUnsupported, helloBad, 9} {
			b := o.appendServerHello(nil, serverHello{status: status})
			if _, err := o.parseServerHello(b); !errors.Is(err, errHello) {
				t.Errorf("status %d: %v; want errHello", status, err)
			}
		}
		// A v1 collector that echoes nothing sensible: a pid-like value.
		v1 := AppendHandshake(nil, o, 1234)
		v1 = append(v1, make([]byte, serverHelloLen-len(v1))...)
		if _, err := o.parseServerHello(v1); err == nil || !strings.Contains(err.Error(), "v1 collector") {
			t.Errorf("%v: %v; want an error that names a v1 collector", o, err)
		}
	}
}

func TestHeader2(t *testing.T) {
	for _, o := range orders {
		var b [header2Len]byte
		o.putHeader2(b[:], 12345, 1<<33+99, -1, 3)
		if n, err := parseFrameHeader(b[:], o, 1<<20); n != 12345 || err != nil {
			t.Fatalf("%v: length %d, %v", o, n, err)
		}
		low, at, level := o.getHeader2(b[:])
		if low != 99 || at != -1 || level != 3 {
			t.Fatalf("%v: %d, %d, %d; want 99, -1, 3", o, low, at, level)
		}
	}
}

func TestExpandSeq(t *testing.T) {
	cases := []struct {
		prev uint64
		low  uint32
		want uint64
	}{
		{0, 1, 1},
		{1, 2, 2},
		{5, 100, 100},
		{math.MaxUint32, 0, 1 << 32},
		{1<<32 - 2, 3, 1<<32 + 3},
		{7, 7, 7 + 1<<32},           // equal low bits: the next number that has them
		{1 << 40, 0, 1<<40 + 1<<32}, // low bits equal: one full turn on
	}
	for _, c := range cases {
		if got := expandSeq(c.prev, c.low); got != c.want {
			t.Errorf("expandSeq(%d, %d) = %d; want %d", c.prev, c.low, got, c.want)
		}
	}
}

func TestCollectorMsgs(t *testing.T) {
	for _, o := range orders {
		var b []byte
		b = o.appendAck(b, 10)
		b = o.appendRefusal(b, 11, refusedTooLarge)
		b = append(b, msgGoodbye)
		want := []collectorMsg{{msgAck, 10, 0}, {msgRefuse, 11, refusedTooLarge}, {kind: msgGoodbye}}
		for i, w := range want {
			// Every prefix short of the whole message asks for more.
			for k := 1; k < len(b) && k < w.size(); k++ {
				if _, n, err := o.parseCollectorMsg(b[:k]); n != 0 || err != nil {
					t.Fatalf("%v: message %d cut to %d bytes: size %d, %v; want 0, nil", o, i, k, n, err)
				}
			}
			m, n, err := o.parseCollectorMsg(b)
			if err != nil || m != w || n != w.size() {
				t.Fatalf("%v: message %d: %+v, %d, %v; want %+v", o, i, m, n, err, w)
			}
			b = b[n:]
		}
		for _, bad := range [][]byte{{'Z'}, o.appendRefusal(nil, 1, 0)} {
			if _, _, err := o.parseCollectorMsg(bad); !errors.Is(err, errCollectorMsg) {
				t.Errorf("%v: %x: %v; want errCollectorMsg", o, bad, err)
			}
		}
	}
}

func (m collectorMsg) size() int {
	switch m.kind {
	case msgAck:
		return ackLen
	case msgRefuse:
		return refuseLen
	}
	return 1
}

// FuzzCollectorMsgs feeds the client's reader of acknowledgements any
// bytes: it never panics, never reads past what it was given, and a
// message it accepts encodes back to the same bytes.
func FuzzCollectorMsgs(f *testing.F) {
	f.Add(LittleEndian.appendAck(nil, 1))
	f.Add(append(LittleEndian.appendRefusal(nil, 2, refusedHandler), msgGoodbye))
	f.Add([]byte{msgAck, 1, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		for len(b) > 0 {
			m, n, err := LittleEndian.parseCollectorMsg(b)
			if err != nil || n == 0 {
				return
			}
			if n > len(b) {
				t.Fatalf("size %d of %d bytes", n, len(b))
			}
			var again []byte
			switch m.kind {
			case msgAck:
				again = LittleEndian.appendAck(nil, m.n)
			case msgRefuse:
				again = LittleEndian.appendRefusal(nil, m.n, m.why)
			default:
				again = []byte{msgGoodbye}
			}
			if string(again) != string(b[:n]) {
				t.Fatalf("%x read as %+v, which encodes as %x", b[:n], m, again)
			}
			b = b[n:]
		}
	})
}

// FuzzHello feeds the collector's reader of hellos any bytes: it never
// panics, and a hello it accepts encodes back to the same bytes.
func FuzzHello(f *testing.F) {
	h := hello{pid: 7, next: 1, tag: "app"}
	copy(h.session[:], "0123456789abcdef")
	f.Add(LittleEndian.appendHello(nil, &h))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < helloLen || len(b) < helloSize(b) {
			return
		}
		b = b[:helloSize(b)]
		got, status, err := LittleEndian.parseHello(b)
		if (err == nil) != (status == helloAccepted) {
			t.Fatalf("status %d with error %v", status, err)
		}
		if err != nil {
			return
		}
		if again := LittleEndian.appendHello(nil, &got); string(again) != string(b) {
			t.Fatalf("%x read as %+v, which encodes as %x", b, got, again)
		}
	})
}

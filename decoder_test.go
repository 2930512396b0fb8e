package logsock_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/logsock/logsock"
	"pgregory.net/rapid"
)

// TestDecoderErrors checks every way a stream can be wrong, and the EOF
// rule: io.EOF only at a frame boundary.
func TestDecoderErrors(t *testing.T) {
	frame := func(s string) string {
		b := logsock.AppendFrame(nil, logsock.LittleEndian, []byte(s))
		return string(b)
	}
	for _, tc := range []struct {
		name    string
		stream  string
		limit   int
		want    []string // messages before the error
		wantErr error
		quote   string
	}{
		{"empty stream", "", 0, nil, io.EOF, ""},
		{"boundary", frame("a") + frame("") + frame("bc"), 0, []string{"a", "", "bc"}, io.EOF, ""},
		{"header 1 byte", frame("a") + "\x05", 0, []string{"a"}, io.ErrUnexpectedEOF, `"\x05"`},
		{"header 3 bytes", "\x05\x00\x00", 0, nil, io.ErrUnexpectedEOF, `"\x05\x00\x00"`},
		{"truncated body", "\x05\x00\x00\x00abc", 0, nil, io.ErrUnexpectedEOF, `"abc"`},
		{"negative", frame("a") + "\xff\xff\xff\xff" + frame("b"), 0, []string{"a"}, logsock.ErrNegativeLength, `"\xff\xff\xff\xff"`},
		{"min int32", "\x00\x00\x00\x80", 0, nil, logsock.ErrNegativeLength, `"\x00\x00\x00\x80"`},
		{"max int32", "\xff\xff\xff\x7f", 0, nil, logsock.ErrFrameTooLarge, `"\xff\xff\xff\x7f"`},
		{"limit", frame("12345") + frame("123456"), 5, []string{"12345"}, logsock.ErrFrameTooLarge, `"\x06\x00\x00\x00"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// One byte a read, too: results must not depend on how the
			// bytes arrive.
			for _, r := range []io.Reader{strings.NewReader(tc.stream), iotest.OneByteReader(strings.NewReader(tc.stream))} {
				d := logsock.NewDecoder(r, &logsock.DecoderConfig{MaxFrame: tc.limit})
				var got []string
				var err error
				for {
					var msg []byte
					if msg, err = d.Next(); err != nil {
						break
					}
					got = append(got, string(msg))
				}
				if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
					t.Errorf("messages %q, want %q", got, tc.want)
				}
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("error %v, want %v", err, tc.wantErr)
				}
				if tc.wantErr != io.EOF {
					var pe *logsock.ProtocolError
					if !errors.As(err, &pe) || !strings.Contains(err.Error(), tc.quote) {
						t.Errorf("error %q: want a *ProtocolError quoting %s", err, tc.quote)
					}
					if _, again := d.Next(); again == nil {
						t.Error("Next after a protocol error succeeded")
					}
				}
			}
		})
	}
}

func TestDecoderHandshake(t *testing.T) {
	for _, tc := range []struct {
		stream  string
		wantErr error
	}{
		{"", io.EOF},
		{"\x01", io.ErrUnexpectedEOF},
		{"\x01\x02\x03", io.ErrUnexpectedEOF},
		{"\x01\x02\x03\x04", nil},
	} {
		pid, err := logsock.NewDecoder(strings.NewReader(tc.stream), nil).Handshake()
		if !errors.Is(err, tc.wantErr) {
			t.Errorf("Handshake(%q) = %d, %v; want %v", tc.stream, pid, err, tc.wantErr)
		}
		if err == nil && pid != 0x04030201 {
			t.Errorf("Handshake(%q) = %#x", tc.stream, pid)
		}
	}
}

// TestDecoderReaderError: a reader's own error comes out as it is, after
// the complete frames read before it.
func TestDecoderReaderError(t *testing.T) {
	boom := errors.New("boom")
	b := logsock.AppendFrame(nil, logsock.LittleEndian, []byte("kept"))
	d := logsock.NewDecoder(io.MultiReader(bytes.NewReader(append(b, 3, 0)), iotest.ErrReader(boom)), nil)
	if msg, err := d.Next(); err != nil || string(msg) != "kept" {
		t.Fatalf("Next = %q, %v", msg, err)
	}
	if _, err := d.Next(); err != boom {
		t.Fatalf("Next error %v, want %v", err, boom)
	}
}

// TestDecoderCodePoints reads what the article's client sends for
// non-ASCII text: the length counts code points.
func TestDecoderCodePoints(t *testing.T) {
	msgs := []string{"current pid: 1", "로그 메시지", "", "𝄞 clef", "é\u0301", "ascii again"}
	var stream []byte
	for _, m := range msgs {
		stream = logsock.AppendHandshake(stream, logsock.LittleEndian, int32(len([]rune(m))))
		stream = append(stream, m...)
	}
	for _, r := range []io.Reader{bytes.NewReader(stream), iotest.OneByteReader(bytes.NewReader(stream))} {
		d := logsock.NewDecoder(r, &logsock.DecoderConfig{CodePoints: true})
		for _, want := range msgs {
			got, err := d.Next()
			if err != nil || string(got) != want {
				t.Fatalf("Next = %q, %v; want %q", got, err, want)
			}
		}
		if _, err := d.Next(); err != io.EOF {
			t.Fatalf("at the end: %v, want io.EOF", err)
		}
	}

	// The byte limit still holds: 3 code points of 3 bytes each exceed 8.
	d := logsock.NewDecoder(bytes.NewReader(append([]byte{3, 0, 0, 0}, "로그✓"...)),
		&logsock.DecoderConfig{CodePoints: true, MaxFrame: 8})
	if _, err := d.Next(); !errors.Is(err, logsock.ErrFrameTooLarge) {
		t.Errorf("9 bytes with limit 8: %v, want ErrFrameTooLarge", err)
	}
	// Cut inside a rune.
	d = logsock.NewDecoder(bytes.NewReader(append([]byte{2, 0, 0, 0}, "로\xea"...)), &logsock.DecoderConfig{CodePoints: true})
	if _, err := d.Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut inside a rune: %v, want io.ErrUnexpectedEOF", err)
	}
	// Not UTF-8: the code points cannot be counted.
	d = logsock.NewDecoder(bytes.NewReader(append([]byte{3, 0, 0, 0}, "a\xffbc"...)), &logsock.DecoderConfig{CodePoints: true})
	if _, err := d.Next(); !errors.Is(err, logsock.ErrInvalidCodePoint) || !strings.Contains(err.Error(), `"\xffbc"`) {
		t.Errorf("invalid UTF-8: %v, want ErrInvalidCodePoint quoting the bytes", err)
	}
}

// TestDecoderBufferBounded: a header that declares a large frame makes the
// buffer grow only with the bytes that arrive.
func TestDecoderBufferBounded(t *testing.T) {
	stream := append([]byte{0, 0, 0x10, 0}, make([]byte, 10)...) // declares 1 MiB, sends 10 bytes
	var before, after runtimeMem
	before.read()
	for range 100 {
		d := logsock.NewDecoder(bytes.NewReader(stream), nil)
		if _, err := d.Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("Next: %v", err)
		}
	}
	after.read()
	if per := (after.total - before.total) / 100; per > 8<<10 {
		t.Errorf("a 10-byte stream declaring 1 MiB allocated %d bytes a decoder, want the 4 KiB buffer and change", per)
	}
}

// fataler is what encodeAll and decodeAll need of a *testing.T or *rapid.T.
type fataler interface {
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// encodeAll writes msgs as a stream in order.
func encodeAll(t fataler, order logsock.ByteOrder, pid int32, msgs [][]byte) []byte {
	stream := logsock.AppendHandshake(nil, order, pid)
	for _, m := range msgs {
		stream = logsock.AppendFrame(stream, order, m)
	}
	return stream
}

// decodeAll reads a stream written by encodeAll.
func decodeAll(t fataler, r io.Reader, order logsock.ByteOrder) (int32, [][]byte) {
	d := logsock.NewDecoder(r, &logsock.DecoderConfig{Order: order})
	pid, err := d.Handshake()
	if err != nil {
		t.Fatalf("Handshake: %v", err)
	}
	var out [][]byte
	for {
		msg, err := d.Next()
		msg = bytes.Clone(msg)
		if err == io.EOF {
			return pid, out
		}
		if err != nil {
			t.Fatalf("Next after %d messages: %v", len(out), err)
		}
		out = append(out, msg)
	}
}

func TestRoundTripProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		order := logsock.ByteOrder(rapid.IntRange(0, 1).Draw(t, "order"))
		pid := rapid.Int32().Draw(t, "pid")
		msgs := rapid.SliceOf(rapid.SliceOfN(rapid.Byte(), 0, 5000)).Draw(t, "msgs")
		oneByte := rapid.Bool().Draw(t, "oneByte")
		var r io.Reader = bytes.NewReader(encodeAll(t, order, pid, msgs))
		if oneByte {
			r = iotest.OneByteReader(r)
		}
		gotPid, got := decodeAll(t, r, order)
		if gotPid != pid || len(got) != len(msgs) {
			t.Fatalf("pid %d, %d messages; want %d, %d", gotPid, len(got), pid, len(msgs))
		}
		for i := range msgs {
			if !bytes.Equal(got[i], msgs[i]) {
				t.Fatalf("message %d: %q, want %q", i, got[i], msgs[i])
			}
		}
	})
}

// Test100kRandomFrames: 100,000 frames of random sizes and bytes, in both
// byte orders, read back equal through reads of random sizes.
func Test100kRandomFrames(t *testing.T) {
	t.Parallel()
	for _, order := range []logsock.ByteOrder{logsock.LittleEndian, logsock.BigEndian} {
		t.Run(order.String(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(order)))
			bytesOf := rand.NewChaCha8([32]byte{byte(order)}) // random bytes, in bulk
			msgs := make([][]byte, 100_000)
			for i := range msgs {
				size := rng.IntN(1 << rng.IntN(13)) // log-uniform up to 4 KiB
				msgs[i] = make([]byte, size)
				bytesOf.Read(msgs[i])
			}
			stream := encodeAll(t, order, 4242, msgs)
			_, got := decodeAll(t, &chunkReader{data: stream, rng: rng}, order)
			if len(got) != len(msgs) {
				t.Fatalf("%d messages, want %d", len(got), len(msgs))
			}
			for i := range msgs {
				if !bytes.Equal(got[i], msgs[i]) {
					t.Fatalf("message %d differs", i)
				}
			}
		})
	}
}

// chunkReader returns its data in reads of random sizes.
type chunkReader struct {
	data []byte
	rng  *rand.Rand
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(c.data), 1+c.rng.IntN(9000))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

func TestDecoderNextAllocs(t *testing.T) {
	msg := bytes.Repeat([]byte("x"), 100)
	var stream []byte
	for range 1000 {
		stream = logsock.AppendFrame(stream, logsock.LittleEndian, msg)
	}
	r := bytes.NewReader(stream)
	d := logsock.NewDecoder(r, nil)
	d.Next() // the first call allocates the read buffer
	allocs := testing.AllocsPerRun(500, func() {
		if _, err := d.Next(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Decoder.Next: %v allocations a frame, want 0", allocs)
	}
}

func FuzzDecoder(f *testing.F) {
	for _, seed := range []string{
		"", "\x01\x02\x03\x04", "\x01\x02\x03\x04\x00\x00\x00\x00",
		"\x01\x02\x03\x04\x02\x00\x00\x00hi", "\x01\x02\x03\x04\xff\xff\xff\xff",
		"\x01\x02\x03\x04\x00\x00\x00\x80", "\x01\x02\x03\x04\xff\xff\xff\x7f",
		"\x01\x02\x03\x04\x05\x00\x00\x00ab", "\x01\x02\x03\x04\x02\x00\x00\x00로",
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	f.Fuzz(func(t *testing.T, stream []byte, codePoints bool) {
		d := logsock.NewDecoder(bytes.NewReader(stream), &logsock.DecoderConfig{MaxFrame: 64, CodePoints: codePoints})
		if _, err := d.Handshake(); err != nil {
			return
		}
		consumed := logsock.HeaderLen
		for {
			msg, err := d.Next()
			if err != nil {
				if err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, logsock.ErrNegativeLength) &&
					!errors.Is(err, logsock.ErrFrameTooLarge) && !(codePoints && errors.Is(err, logsock.ErrInvalidCodePoint)) {
					t.Fatalf("unexpected error %v", err)
				}
				if err == io.EOF && consumed != len(stream) {
					t.Fatalf("io.EOF after %d of %d bytes", consumed, len(stream))
				}
				return
			}
			if len(msg) > 64 {
				t.Fatalf("message of %d bytes passed limit 64", len(msg))
			}
			consumed += logsock.HeaderLen + len(msg)
			if !bytes.Equal(msg, stream[consumed-len(msg):consumed]) {
				t.Fatal("message is not the bytes that follow its header")
			}
		}
	})
}

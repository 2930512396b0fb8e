package logsock

import (
	"bytes"
	"math"
	"strconv"
	"testing"

	"pgregory.net/rapid"
)

// TestFramingRoundTrip: a run of frames that framing.put encodes is found
// again by framing.frame, frame by frame, in both framings; octet counts
// are the decimal length and a space (RFC 6587), and headerLen covers
// every length an int32 allows.
func TestFramingRoundTrip(t *testing.T) {
	for _, n := range []int{0, 9, 10, 99, 100, 12345, math.MaxInt32} {
		f := framing{octets: true}
		if got, want := f.headerLen(n), len(strconv.Itoa(n))+1; got != want || got > maxHeader {
			t.Errorf("headerLen(%d) = %d, want %d (at most %d)", n, got, want, maxHeader)
		}
	}
	rapid.Check(t, func(t *rapid.T) {
		f := framing{octets: rapid.Bool().Draw(t, "octets"), order: ByteOrder(rapid.IntRange(0, 1).Draw(t, "order"))}
		msgs := rapid.SliceOf(rapid.SliceOfN(rapid.Byte(), 0, 300)).Draw(t, "msgs")
		var run []byte
		for _, m := range msgs {
			b := make([]byte, f.size(len(m)))
			f.put(b, m, meta{})
			if f.octets && !bytes.HasPrefix(b, []byte(strconv.Itoa(len(m))+" ")) {
				t.Fatalf("frame of %d bytes starts %q", len(m), b[:min(len(b), 12)])
			}
			run = append(run, b...)
		}
		for i, off := 0, 0; i < len(msgs); i++ {
			size, n := f.frame(run[off:])
			if n != len(msgs[i]) || !bytes.Equal(run[off+size-n:off+size], msgs[i]) {
				t.Fatalf("frame %d: size %d, message of %d bytes, want %q", i, size, n, msgs[i])
			}
			off += size
		}
	})
}

package logsock

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

// fakeSource is a bufferSource that records what a Decoder takes and
// gives back.
type fakeSource struct {
	keep  bool
	taken []string // "n wait", in order
	lent  map[*byte]int
	given []int // sizes given back, in order
}

func (f *fakeSource) takeBuf(n int, wait bool, holding int) ([]byte, error) {
	f.taken = append(f.taken, fmt.Sprint(n, " ", wait))
	b := make([]byte, n, bufSize(n))
	f.lent[&b[:1][0]] = n
	return b, nil
}

func (f *fakeSource) giveBuf(b []byte) {
	if _, ok := f.lent[&b[:1][0]]; !ok {
		panic("gave back a buffer not lent")
	}
	delete(f.lent, &b[:1][0])
	f.given = append(f.given, cap(b))
}

func (f *fakeSource) keepBuf() bool { return f.keep }

// chunkReader returns at most 8 KiB a read, as a socket does.
type chunkReader struct{ r io.Reader }

func (c chunkReader) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), 8<<10)]) }

// TestDecoderSource: with a source, a frame longer than the busy buffer
// gets a buffer of its own length, once its first bytes fill the small
// one, and no read reaches past it; once consumed, that buffer is given
// back at once when the source wants it back, or kept for the next
// frames; a stream of small frames that fills the small buffer asks for
// a busy one, without waiting; and free gives back all that is lent.
func TestDecoderSource(t *testing.T) {
	big := bytes.Repeat([]byte("b"), 100<<10)
	var stream []byte
	stream = AppendHandshake(stream, LittleEndian, 7)
	stream = AppendFrame(stream, LittleEndian, big)
	for i := range 2000 {
		stream = AppendFrame(stream, LittleEndian, fmt.Appendf(nil, "small %04d", i))
	}
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprint("keep=", keep), func(t *testing.T) {
			src := &fakeSource{keep: keep, lent: map[*byte]int{}}
			d := NewDecoder(chunkReader{bytes.NewReader(stream)}, nil)
			d.src = src
			if _, err := d.Handshake(); err != nil {
				t.Fatal(err)
			}
			msg, err := d.Next()
			if err != nil || !bytes.Equal(msg, big) {
				t.Fatalf("big frame: %d bytes, %v", len(msg), err)
			}
			if want := fmt.Sprint(HeaderLen+len(big), " true"); len(src.taken) != 1 || src.taken[0] != want {
				t.Fatalf("taken %q, want one buffer of the frame's length, waiting for it: %q", src.taken, want)
			}
			if d.buffered() != 0 {
				t.Errorf("%d bytes read past the frame into its buffer", d.buffered())
			}
			msg, err = d.Next()
			if err != nil || string(msg) != "small 0000" {
				t.Fatalf("first small frame: %q, %v", msg, err)
			}
			if gave := len(src.given) == 1; gave == keep {
				t.Errorf("keep %v: given back %v after the frame", keep, src.given)
			}
			for i := 1; i < 2000; i++ {
				if msg, err := d.Next(); err != nil || string(msg) != fmt.Sprintf("small %04d", i) {
					t.Fatalf("small frame %d: %q, %v", i, msg, err)
				}
			}
			if _, err := d.Next(); err != io.EOF {
				t.Fatalf("end: %v, want io.EOF", err)
			}
			if !keep && (len(src.taken) != 2 || src.taken[1] != fmt.Sprint(maxReadBuf, " false")) {
				t.Errorf("taken %q: want a busy buffer asked for, without waiting, once small frames filled the small one", src.taken)
			}
			d.free()
			if len(src.lent) != 0 {
				t.Errorf("%d buffers still lent after free", len(src.lent))
			}
		})
	}
}

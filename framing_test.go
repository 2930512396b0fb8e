package logsock_test

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/logsock/logsock"
)

func TestAppendHandshake(t *testing.T) {
	for _, tc := range []struct {
		order logsock.ByteOrder
		pid   int32
		want  []byte
	}{
		{logsock.LittleEndian, 17120, []byte{0xe0, 0x42, 0, 0}},
		{logsock.BigEndian, 17120, []byte{0, 0, 0x42, 0xe0}},
		{logsock.LittleEndian, -2, []byte{0xfe, 0xff, 0xff, 0xff}},
		{logsock.BigEndian, math.MaxInt32, []byte{0x7f, 0xff, 0xff, 0xff}},
	} {
		got := logsock.AppendHandshake([]byte("x"), tc.order, tc.pid)
		if want := append([]byte("x"), tc.want...); !bytes.Equal(got, want) {
			t.Errorf("AppendHandshake(%v, %d) = %x, want %x", tc.order, tc.pid, got, want)
		}
		pid, err := logsock.NewDecoder(bytes.NewReader(tc.want), &logsock.DecoderConfig{Order: tc.order}).Handshake()
		if err != nil || pid != tc.pid {
			t.Errorf("Handshake of %x, %v = %d, %v; want %d", tc.want, tc.order, pid, err, tc.pid)
		}
	}
}

func TestAppendFrame(t *testing.T) {
	for _, tc := range []struct {
		order logsock.ByteOrder
		msg   string
		want  string
	}{
		{logsock.LittleEndian, "", "\x00\x00\x00\x00"},
		{logsock.LittleEndian, "hi", "\x02\x00\x00\x00hi"},
		{logsock.BigEndian, "hi", "\x00\x00\x00\x02hi"},
		// The length counts bytes: 3 code points, 9 bytes.
		{logsock.LittleEndian, "로그✓", "\x09\x00\x00\x00로그✓"},
	} {
		got := logsock.AppendFrame([]byte("pre:"), tc.order, []byte(tc.msg))
		if string(got) != "pre:"+tc.want {
			t.Errorf("AppendFrame(%v, %q) = %q; want %q", tc.order, tc.msg, got, tc.want)
		}
		msg, err := logsock.NewDecoder(strings.NewReader(tc.want), &logsock.DecoderConfig{Order: tc.order}).Next()
		if err != nil || string(msg) != tc.msg {
			t.Errorf("Next of %q = %q, %v; want %q", tc.want, msg, err, tc.msg)
		}
	}
}

// TestFrameHeaderChecked: a length that is negative, or above the
// Decoder's limit, is a *ProtocolError that quotes the header.
func TestFrameHeaderChecked(t *testing.T) {
	for _, tc := range []struct {
		hdr     string
		order   logsock.ByteOrder
		limit   int
		want    int
		wantErr error
		quote   string // the error must quote the header
	}{
		{"\x00\x00\x00\x00", logsock.LittleEndian, 0, 0, nil, ""},
		{"\x00\x00\x10\x00", logsock.LittleEndian, 0, 1 << 20, nil, ""},
		{"\x01\x00\x10\x00", logsock.LittleEndian, 0, 0, logsock.ErrFrameTooLarge, `"\x01\x00\x10\x00"`},
		{"\x00\x00\x00\x65", logsock.BigEndian, 100, 0, logsock.ErrFrameTooLarge, `"\x00\x00\x00e"`},
		{"\x00\x00\x00\x64", logsock.BigEndian, 100, 100, nil, ""},
		{"\xff\xff\xff\xff", logsock.LittleEndian, 0, 0, logsock.ErrNegativeLength, `"\xff\xff\xff\xff"`},
		{"\x00\x00\x00\x80", logsock.LittleEndian, 0, 0, logsock.ErrNegativeLength, `"\x00\x00\x00\x80"`},
		{"\xff\xff\xff\x7f", logsock.LittleEndian, 0, 0, logsock.ErrFrameTooLarge, `"\xff\xff\xff\x7f"`},
	} {
		stream := tc.hdr + strings.Repeat("m", tc.want)
		msg, err := logsock.NewDecoder(strings.NewReader(stream), &logsock.DecoderConfig{Order: tc.order, MaxFrame: tc.limit}).Next()
		if !errors.Is(err, tc.wantErr) || len(msg) != tc.want {
			t.Errorf("Next of %q, %v, limit %d = %d bytes, %v; want %d, %v", tc.hdr, tc.order, tc.limit, len(msg), err, tc.want, tc.wantErr)
			continue
		}
		if err == nil {
			continue
		}
		var pe *logsock.ProtocolError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), tc.quote) {
			t.Errorf("Next of %q: error %q is not a *ProtocolError quoting %s", tc.hdr, err, tc.quote)
		}
	}
}

func TestByteOrderText(t *testing.T) {
	for _, o := range []logsock.ByteOrder{logsock.LittleEndian, logsock.BigEndian} {
		text, err := o.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back logsock.ByteOrder
		if err := back.UnmarshalText(text); err != nil || back != o {
			t.Errorf("UnmarshalText(%q) = %v, %v; want %v", text, back, err, o)
		}
	}
	var o logsock.ByteOrder
	if err := o.UnmarshalText([]byte("native")); err == nil {
		t.Error(`UnmarshalText("native") succeeded`)
	}
}

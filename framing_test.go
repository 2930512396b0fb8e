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
		var put [4]byte
		logsock.PutHandshake(put[:], tc.order, tc.pid)
		if !bytes.Equal(put[:], tc.want) {
			t.Errorf("PutHandshake(%v, %d) = %x, want %x", tc.order, tc.pid, put, tc.want)
		}
		pid, err := logsock.ReadHandshake(bytes.NewReader(tc.want), tc.order)
		if err != nil || pid != tc.pid {
			t.Errorf("ReadHandshake(%x, %v) = %d, %v; want %d", tc.want, tc.order, pid, err, tc.pid)
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
		got, err := logsock.AppendFrame(nil, tc.order, []byte(tc.msg))
		if err != nil || string(got) != tc.want {
			t.Errorf("AppendFrame(%v, %q) = %q, %v; want %q", tc.order, tc.msg, got, err, tc.want)
		}
		var hdr [4]byte
		logsock.PutFrameHeader(hdr[:], tc.order, len(tc.msg))
		if string(hdr[:]) != tc.want[:4] {
			t.Errorf("PutFrameHeader(%v, %d) = %q, want %q", tc.order, len(tc.msg), hdr, tc.want[:4])
		}
		msg, err := logsock.ReadFrame(strings.NewReader(tc.want), tc.order, 0, []byte("pre:"))
		if err != nil || string(msg) != "pre:"+tc.msg {
			t.Errorf("ReadFrame(%q) = %q, %v; want %q", tc.want, msg, err, "pre:"+tc.msg)
		}
	}
}

func TestParseFrameHeader(t *testing.T) {
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
		n, err := logsock.ParseFrameHeader([]byte(tc.hdr), tc.order, tc.limit)
		if !errors.Is(err, tc.wantErr) || n != tc.want {
			t.Errorf("ParseFrameHeader(%q, %v, %d) = %d, %v; want %d, %v", tc.hdr, tc.order, tc.limit, n, err, tc.want, tc.wantErr)
			continue
		}
		if err == nil {
			continue
		}
		var pe *logsock.ProtocolError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), tc.quote) {
			t.Errorf("ParseFrameHeader(%q): error %q is not a *ProtocolError quoting %s", tc.hdr, err, tc.quote)
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

//go:build unix

package faultlab

import (
	"slices"
	"strings"
	"testing"
)

func TestMessageParse(t *testing.T) {
	for _, tc := range []struct {
		seq, size int
		want      string
	}{
		{0, 0, "seq 000000 "},
		{7, 14, "seq 000007 hhh"},
		{123, 11, "seq 000123 "},
		{1234567, 0, "seq 1234567 "},
	} {
		msg := Message(tc.seq, tc.size)
		if msg != tc.want {
			t.Errorf("Message(%d, %d) = %q, want %q", tc.seq, tc.size, msg, tc.want)
		}
		if len(msg) != messageLen(tc.seq, tc.size) {
			t.Errorf("Message(%d, %d): %d bytes, messageLen says %d", tc.seq, tc.size, len(msg), messageLen(tc.seq, tc.size))
		}
		seq, intact, ok := Parse(msg)
		if !ok || !intact || seq != tc.seq {
			t.Errorf("Parse(%q) = %d, %v, %v; want %d, true, true", msg, seq, intact, ok, tc.seq)
		}
	}

	for _, tc := range []struct {
		in         string
		seq        int
		intact, ok bool
	}{
		{"<14>2026-01-01T00:00:00Z host tag[1]: seq 000002 ccc", 2, false, true}, // a header before: found, not intact
		{"seq 000002 ccd", 2, false, true},                                       // spliced padding
		{"seq 000002 ccc" + Message(3, 20), 2, false, true},                      // two messages run together
		{"seq 12x", 0, false, false},
		{"seq ", 0, false, false},
		{"hello", 0, false, false},
	} {
		seq, intact, ok := Parse(tc.in)
		if seq != tc.seq || intact != tc.intact || ok != tc.ok {
			t.Errorf("Parse(%q) = %d, %v, %v; want %d, %v, %v", tc.in, seq, intact, ok, tc.seq, tc.intact, tc.ok)
		}
	}
}

func rec(seq int) Record {
	return Record{Seq: seq, Intact: true, Len: messageLen(seq, 20)}
}

func TestCheck(t *testing.T) {
	recs := []Record{rec(0), rec(1), rec(3), rec(2), rec(3), rec(6), rec(7), {Seq: -1}, rec(42)}
	recs = append(recs, Record{Seq: 8, Intact: true, Len: 5}) // the right number, the wrong length
	got := Check(10, 20, recs)
	want := Tally{Sent: 10, Received: 8, Missing: 3, Duplicated: 1, OutOfOrder: 1, Foreign: 2, Corrupt: 1,
		MissingSeqs: []int{4, 5, 9}}
	if got.Sent != want.Sent || got.Received != want.Received || got.Missing != want.Missing ||
		got.Duplicated != want.Duplicated || got.OutOfOrder != want.OutOfOrder || got.Foreign != want.Foreign ||
		got.Corrupt != want.Corrupt || !slices.Equal(got.MissingSeqs, want.MissingSeqs) {
		t.Errorf("Check = %+v\nwant    %+v", got, want)
	}
	if r := Ranges(got.MissingSeqs); r != "4-5,9" {
		t.Errorf("Ranges = %q, want 4-5,9", r)
	}
	if r := Ranges(nil); r != "none" {
		t.Errorf("Ranges(nil) = %q", r)
	}
	many := make([]int, 0, 20)
	for i := range 20 {
		many = append(many, 3*i)
	}
	if s := shortRanges(many); !strings.HasSuffix(s, ",... (20 ranges)") {
		t.Errorf("shortRanges = %q", s)
	}
}

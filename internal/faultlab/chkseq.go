//go:build unix

package faultlab

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The messages of a run carry sequence numbers, as in rsyslog's chkseq
// test tool: "seq 000123 " and then padding, a letter that depends on the
// number, up to the message size. The padding lets the checker notice a
// message that is not exactly what was sent (a torn or spliced frame).

const seqPrefix = "seq "

// AppendMessage appends the message of sequence number seq to dst: the
// prefix, the number in at least six digits and a space, then padding up
// to size bytes.
func AppendMessage(dst []byte, seq, size int) []byte {
	start := len(dst)
	dst = append(dst, seqPrefix...)
	if seq < 100000 {
		for p := 100000; p > 1 && seq < p; p /= 10 {
			dst = append(dst, '0')
		}
	}
	dst = strconv.AppendInt(dst, int64(seq), 10)
	dst = append(dst, ' ')
	pad := padByte(seq)
	for len(dst)-start < size {
		dst = append(dst, pad)
	}
	return dst
}

// Message returns the message of sequence number seq (see AppendMessage).
func Message(seq, size int) string { return string(AppendMessage(nil, seq, size)) }

// messageLen returns the length of the message of seq.
func messageLen(seq, size int) int {
	digits := len(strconv.Itoa(seq))
	return max(size, len(seqPrefix)+max(digits, 6)+1)
}

func padByte(seq int) byte { return 'a' + byte(seq%26) }

// Parse finds a sequence number in s: "seq " and digits, followed by a
// space or the end, anywhere in s (a syslog line has its header before
// it). intact reports whether what follows is the padding of that number
// and nothing else.
func Parse(s string) (seq int, intact, ok bool) {
	i := strings.Index(s, seqPrefix)
	if i < 0 {
		return 0, false, false
	}
	rest := s[i+len(seqPrefix):]
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	if n == 0 || n > 12 || (n < len(rest) && rest[n] != ' ') {
		return 0, false, false
	}
	seq, err := strconv.Atoi(rest[:n])
	if err != nil {
		return 0, false, false
	}
	intact = i == 0 && n >= 6
	pad := padByte(seq)
	if n < len(rest) {
		for j := n + 1; j < len(rest) && intact; j++ {
			intact = rest[j] == pad
		}
	}
	return seq, intact, true
}

// Tally is what a checker makes of the sequence numbers received, given
// that 0 to Sent-1 were sent.
type Tally struct {
	Sent       int // sequence numbers sent: 0 to Sent-1
	Received   int // records received with a sequence number below Sent
	Missing    int // numbers sent and never received
	Duplicated int // records of a number already received
	OutOfOrder int // first receptions of a number below one received before
	Foreign    int // records with no sequence number, or one not sent
	Corrupt    int // records whose number is good but whose text is not what was sent

	MissingSeqs []int // the missing numbers, in order
}

// Check tallies recs (in the order they arrived) against Sent messages of
// size bytes each: rsyslog's chkseq, counting instead of stopping at the
// first gap.
func Check(sent, size int, recs []Record) Tally {
	t := Tally{Sent: sent}
	seen := make([]int, sent) // receptions of each number
	maxSeen := -1
	for _, r := range recs {
		if r.Seq < 0 || r.Seq >= sent {
			t.Foreign++
			continue
		}
		t.Received++
		if !r.Intact || r.Len != messageLen(r.Seq, size) {
			t.Corrupt++
		}
		seen[r.Seq]++
		if seen[r.Seq] > 1 {
			t.Duplicated++
			continue
		}
		if r.Seq < maxSeen {
			t.OutOfOrder++
		}
		maxSeen = max(maxSeen, r.Seq)
	}
	for seq, n := range seen {
		if n == 0 {
			t.Missing++
			t.MissingSeqs = append(t.MissingSeqs, seq)
		}
	}
	return t
}

// Ranges formats sorted numbers as ranges: "3-7,12".
func Ranges(seqs []int) string {
	if len(seqs) == 0 {
		return "none"
	}
	seqs = slices.Clone(seqs)
	slices.Sort(seqs)
	var b strings.Builder
	for i := 0; i < len(seqs); {
		j := i
		for j+1 < len(seqs) && seqs[j+1] <= seqs[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		if i == j {
			fmt.Fprintf(&b, "%d", seqs[i])
		} else {
			fmt.Fprintf(&b, "%d-%d", seqs[i], seqs[j])
		}
		i = j + 1
	}
	return b.String()
}

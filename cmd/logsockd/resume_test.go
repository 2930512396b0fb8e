//go:build unix

package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/logsock/logsock"
)

// TestLastSeqs: the tail scan finds each session's highest number in the
// lines that the formatter writes, JSON and text, v1 lines among them;
// a v1 message or a -json-msg object that looks like the v2 fields does
// not count, nor a line that the scan's start cuts.
func TestLastSeqs(t *testing.T) {
	var file bytes.Buffer
	a, b := logsock.SessionID{1}, logsock.SessionID{2}
	forged := "client_time=2026-11-26T00:25:39.522835200Z session=" + strings.Repeat("0", 31) + "3/999"
	for i, json := range []bool{true, false} {
		f := newTestFormatter(json, true)
		rec := v2Record(tcpRecord("x"))
		for seq := range uint64(5) {
			rec.Session, rec.Seq = a, 10*uint64(i)+seq+1
			file.Write(f.append(nil, rec))
			rec.Session, rec.Seq = b, 100-seq
			file.Write(f.append(nil, rec))
		}
		file.Write(f.append(nil, tcpRecord(forged)))
		file.Write(f.append(nil, tcpRecord(`{"client_time":"x","session":"`+strings.Repeat("0", 31)+`3","seq":999}`)))
	}
	got, err := lastSeqs(bytes.NewReader(file.Bytes()), int64(file.Len()), tailScan)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[a] != 15 || got[b] != 100 {
		t.Errorf("got %v; want %v: 15, %v: 100", got, a, b)
	}

	// The scan starts in the middle of a line that holds the largest
	// number of a: it is not read.
	var tail bytes.Buffer
	f := newTestFormatter(true, false)
	rec := v2Record(tcpRecord("y"))
	rec.Session, rec.Seq = a, 50
	tail.Write(f.append(nil, rec))
	rec.Session, rec.Seq = b, 7
	tail.Write(f.append(nil, rec))
	limit := int64(tail.Len() - 10)
	got, err = lastSeqs(bytes.NewReader(tail.Bytes()), int64(tail.Len()), limit)
	if err != nil || len(got) != 1 || got[b] != 7 {
		t.Errorf("from the middle of the first line: %v, %v; want only %v: 7", got, err, b)
	}
}

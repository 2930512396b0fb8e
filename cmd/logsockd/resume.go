//go:build unix

package main

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"log"
	"strconv"

	"github.com/logsock/logsock"
)

// tailScan bounds how much of the end of the -o file logsockd reads at
// start to learn each v2 session's last record (issue 19). What a client
// sends again after a crash is what it had not had acknowledged, which
// its buffer holds (4 MiB by default, about 25,000 records of 100 bytes,
// 40 MB of JSON lines at most): 64 MiB of lines covers that for a client
// alone, and for several clients whose records were interleaved. Reading
// it takes about a tenth of a second.
const tailScan = 64 << 20

// lastSeqs reads the lines of r from max(0, size-limit) to size and
// returns, for each v2 session, the highest sequence number among its
// records there. A first line that the start cuts is skipped. Only the
// start of a line is looked at (appendV2 writes the fields there), so a
// line of any length costs a scan for its newline.
func lastSeqs(r io.ReaderAt, size, limit int64) (map[logsock.SessionID]uint64, error) {
	start := max(0, size-limit)
	br := bufio.NewReaderSize(io.NewSectionReader(r, start, size-start), 64<<10)
	seqs := make(map[logsock.SessionID]uint64)
	lineStart := start == 0
	for {
		b, err := br.ReadSlice('\n')
		if len(b) > 0 && lineStart {
			if id, seq, ok := parseV2(b); ok {
				seqs[id] = max(seqs[id], seq)
			}
		}
		switch {
		case err == nil:
			lineStart = true
		case errors.Is(err, bufio.ErrBufferFull):
			lineStart = false // the rest of a long line
		case err == io.EOF:
			return seqs, nil
		default:
			return seqs, err
		}
	}
}

// parseV2 returns the session and the sequence number of a line that
// appendV2 wrote, JSON or text; ok is false for any other line (a v1
// record's).
func parseV2(line []byte) (id logsock.SessionID, seq uint64, ok bool) {
	var rest []byte
	if b, json := bytes.CutPrefix(line, []byte(`{"time":"`)); json {
		// {"time":"T","client_time":"T","session":"HEX","seq":N,
		if rest, ok = skipTo(b, `","client_time":"`); !ok {
			return id, 0, false
		}
		if rest, ok = skipTo(rest, `","session":"`); !ok {
			return id, 0, false
		}
		if rest, ok = cutHex(rest, &id); !ok {
			return id, 0, false
		}
		if rest, ok = bytes.CutPrefix(rest, []byte(`","seq":`)); !ok {
			return id, 0, false
		}
	} else {
		// T client_time=T session=HEX/N
		if rest, ok = skipTo(line, " client_time="); !ok {
			return id, 0, false
		}
		if rest, ok = skipTo(rest, " session="); !ok {
			return id, 0, false
		}
		if rest, ok = cutHex(rest, &id); !ok {
			return id, 0, false
		}
		if rest, ok = bytes.CutPrefix(rest, []byte{'/'}); !ok {
			return id, 0, false
		}
	}
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	seq, err := strconv.ParseUint(string(rest[:n]), 10, 64)
	if err != nil || seq == 0 || id == (logsock.SessionID{}) {
		return id, 0, false
	}
	return id, seq, true
}

// skipTo returns what follows sep in b, which the first space or quote
// of b must begin: a time, which has neither, comes before it.
func skipTo(b []byte, sep string) ([]byte, bool) {
	i := bytes.IndexAny(b, ` "`)
	if i < 0 {
		return nil, false
	}
	return bytes.CutPrefix(b[i:], []byte(sep))
}

// cutHex decodes the 32 hexadecimal digits that b begins with into id,
// and returns the rest.
func cutHex(b []byte, id *logsock.SessionID) ([]byte, bool) {
	const n = 2 * len(logsock.SessionID{})
	if len(b) < n {
		return nil, false
	}
	if _, err := hex.Decode(id[:], b[:n]); err != nil {
		return nil, false
	}
	return b[n:], true
}

// resume learns, from the end of the output's file, each v2 session's
// last record written, and has srv drop what its client sends again up
// to it: records that were written, and not acknowledged before a crash
// (issue 19). Call it before srv serves. A torn last line has been set
// aside already (mend); the record it held was not acknowledged, and
// comes again.
func (o *output) resume(srv *logsock.Server) {
	if o.path == "" {
		return
	}
	fi, err := o.file.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() == 0 {
		return
	}
	seqs, err := lastSeqs(o.file, fi.Size(), tailScan)
	if err != nil {
		log.Printf("output %s: reading its end for the v2 sessions' last records: %v; what their clients send again may be written twice", o.name, err)
	}
	for id, seq := range seqs {
		srv.Resume(id, seq)
	}
	if len(seqs) > 0 {
		log.Printf("output %s: %d v2 sessions in its last %d bytes: their records up to the last one there are not written again", o.name, len(seqs), min(fi.Size(), tailScan))
	}
}

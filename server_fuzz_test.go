package logsock_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/logsocktest"
)

// fuzzLimit is the fuzzed Servers' MaxFrame: small, so that the fuzzer
// reaches it.
const fuzzLimit = 64

// fuzzCollector is a Server on a Unix socket that keeps, for the one
// connection at a time that the fuzz function opens, its records and its
// end. Messages go into storage reserved in advance, so that the
// allocations measured are the Server's.
type fuzzCollector struct {
	srv  *logsock.Server
	addr string

	mu   sync.Mutex // guards data and recs
	data []byte
	recs []fuzzRecord
	ends chan connEnd
}

type fuzzRecord struct {
	start, end     int // the message: data[start:end]
	pid, writerPid int32
	flags          logsock.Flags
}

func newFuzzCollector(f *testing.F, codePoints bool) *fuzzCollector {
	c := &fuzzCollector{data: make([]byte, 0, 4<<20), recs: make([]fuzzRecord, 0, 1<<16), ends: make(chan connEnd, 1)}
	c.srv = &logsock.Server{DecoderConfig: logsock.DecoderConfig{MaxFrame: fuzzLimit, CodePoints: codePoints}, Handler: c.record,
		ConnClosed: func(info logsock.ConnInfo, err error) { c.ends <- connEnd{info, err} }}
	c.addr = logsocktest.Serve(f, "unix", c.srv)
	return c
}

func (c *fuzzCollector) record(r *logsock.Record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	start := len(c.data)
	c.data = append(c.data, r.Msg...)
	c.recs = append(c.recs, fuzzRecord{start, len(c.data), r.Pid, r.WriterPid, r.Flags})
}

// run sends stream on a new connection, in writes of chunk bytes (all at
// once if 0), and returns what the Server made of it, and the bytes it
// allocated meanwhile.
func (c *fuzzCollector) run(t *testing.T, stream []byte, chunk int) ([]fuzzRecord, []byte, connEnd, uint64) {
	c.mu.Lock()
	c.data, c.recs = c.data[:0], c.recs[:0]
	c.mu.Unlock()
	var before, after runtimeMem
	before.read()
	conn, err := net.Dial("unix", c.addr)
	if err != nil {
		t.Fatal(err)
	}
	for rest := stream; len(rest) > 0; {
		n := len(rest)
		if chunk > 0 {
			n = min(n, chunk)
		}
		if _, err := conn.Write(rest[:n]); err != nil {
			break // the Server has closed: what it read decides
		}
		rest = rest[n:]
	}
	conn.Close()
	var end connEnd
	select {
	case end = <-c.ends:
	case <-time.After(20 * time.Second):
		t.Fatal("the connection did not end")
	}
	after.read()
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.recs), bytes.Clone(c.data), end, after.total - before.total
}

// referenceDecode is what the Server must make of a stream: an
// independent reading of the wire format (handshake; frames of a length,
// in bytes or code points, from 0 to fuzzLimit bytes), giving the pid,
// the messages and how the stream ends.
func referenceDecode(stream []byte, codePoints bool) (pid int32, msgs [][]byte, reason logsock.Reason) {
	if len(stream) < 4 {
		return 0, nil, map[bool]logsock.Reason{true: logsock.ReasonEOF, false: logsock.ReasonTruncated}[len(stream) == 0]
	}
	pid, stream = int32(binary.LittleEndian.Uint32(stream)), stream[4:]
	for {
		switch {
		case len(stream) == 0:
			return pid, msgs, logsock.ReasonEOF
		case len(stream) < 4:
			return pid, msgs, logsock.ReasonTruncated
		}
		n := int32(binary.LittleEndian.Uint32(stream))
		switch {
		case n < 0:
			return pid, msgs, logsock.ReasonBadLength
		case n > fuzzLimit:
			return pid, msgs, logsock.ReasonFrameTooLarge
		}
		body, size := stream[4:], int(n)
		if codePoints {
			size = 0
			for range n {
				if !utf8.FullRune(body[size:]) {
					return pid, msgs, logsock.ReasonTruncated
				}
				r, w := utf8.DecodeRune(body[size:])
				if r == utf8.RuneError && w == 1 {
					return pid, msgs, logsock.ReasonBadLength
				}
				if size += w; size > fuzzLimit {
					return pid, msgs, logsock.ReasonFrameTooLarge
				}
			}
		}
		if len(body) < size {
			return pid, msgs, logsock.ReasonTruncated
		}
		msgs = append(msgs, body[:size])
		stream = body[size:]
	}
}

// FuzzServerConn feeds a Server arbitrary streams over a real Unix socket:
// it must not panic, must deliver exactly the frames that the reference
// decoding finds, end the connection with the reason it predicts, flag
// what it must, and allocate no more than the limit and a constant.
func FuzzServerConn(f *testing.F) {
	pid := int32(os.Getpid())
	hs := logsock.AppendHandshake(nil, logsock.LittleEndian, pid)
	for _, seed := range [][]byte{
		nil,
		hs[:1], hs[:2], hs[:3], // a handshake cut short
		hs,
		cat(hs, frameOf("hi"), frameOf("")),
		cat(hs, bytes.Repeat(le(0), 50)), // zero-length frames in a row
		cat(hs, frameOf("ok"), le(0xffffffff), "more"),                               // -1
		cat(hs, le(0x80000000)),                                                      // min int32
		cat(hs, le(0x7fffffff), "body"),                                              // max int32
		cat(hs, le(fuzzLimit+1), bytes.Repeat([]byte("x"), fuzzLimit+1)),             // limit + 1
		cat(hs, frameOf(string(bytes.Repeat([]byte("x"), fuzzLimit)))),               // the limit
		cat(hs, frameOf("ok"), "\x05"), cat(hs, "\x05\x00"), cat(hs, "\x05\x00\x00"), // a header cut short
		cat(hs, le(10), "abc"),                                                // a body cut short
		cat(hs, frameOf("\xff\xfe not text"), frameOf("text")),                // invalid UTF-8
		cat(hs, le(2), "로그"), cat(hs, le(2), "로\xea"), cat(hs, le(1), "\xff"), // code points
		cat(hs, le(20), "aaaaaaaaaa", le(20), "bbbbbb\xff\xff\xff\xffbbbbbbbbbb", "aaaaaaaaaa"), // torn by two writers
		cat(le(1), frameOf("a handshake that lies")),
	} {
		f.Add(seed, false, uint8(0))
		f.Add(seed, true, uint8(1))
	}
	byteMode, runeMode := newFuzzCollector(f, false), newFuzzCollector(f, true)
	f.Fuzz(func(t *testing.T, stream []byte, codePoints bool, chunk uint8) {
		col := byteMode
		if codePoints {
			col = runeMode
		}
		recs, data, end, allocated := col.run(t, stream, int(chunk))
		wantPid, want, reason := referenceDecode(stream, codePoints)

		if end.info.Reason != reason {
			t.Fatalf("ended with %v (%v), want %v", end.info.Reason, end.err, reason)
		}
		if (end.err == nil) != (reason == logsock.ReasonEOF) || (reason == logsock.ReasonTruncated && !errors.Is(end.err, io.ErrUnexpectedEOF)) {
			t.Fatalf("reason %v with error %v", reason, end.err)
		}
		if len(recs) != len(want) || end.info.Frames != uint64(len(want)) {
			t.Fatalf("%d records (ConnInfo.Frames %d), want %d", len(recs), end.info.Frames, len(want))
		}
		mismatch := runtime.GOOS == "linux" && wantPid != pid
		for i, r := range recs {
			msg := data[r.start:r.end]
			if !bytes.Equal(msg, want[i]) {
				t.Fatalf("record %d: %q, want %q", i, msg, want[i])
			}
			var flags logsock.Flags
			if !utf8.Valid(msg) {
				flags |= logsock.FlagInvalidUTF8
			}
			if mismatch {
				flags |= logsock.FlagPidMismatch
			}
			if r.flags != flags || r.pid != wantPid {
				t.Fatalf("record %d: pid %d flags %v, want %d and %v", i, r.pid, r.flags, wantPid, flags)
			}
			if runtime.GOOS == "linux" && r.writerPid != pid {
				t.Fatalf("record %d: WriterPid %d, want %d", i, r.writerPid, pid)
			}
		}
		// The constant: both ends of a connection, and one read buffer.
		if bound := uint64(fuzzLimit + 48<<10); allocated > bound {
			t.Fatalf("allocated %d bytes for a stream of %d, want under %d", allocated, len(stream), bound)
		}
	})
}

//go:build unix

package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"math"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/logsock/logsock"
)

// recTime is a receive time whose fraction has trailing zeros, which a
// fixed-width format must keep.
var recTime = time.Date(2026, 11, 26, 1, 25, 42, 522835200, time.FixedZone("CET", 3600))

// newTestFormatter returns a formatter with the run id 0123456789abcdef.
func newTestFormatter(jsonOut, jsonMsg bool) *formatter {
	f := newFormatter(jsonOut, jsonMsg)
	f.run = "0123456789abcdef"
	return f
}

func tcpRecord(msg string) *logsock.Record {
	return &logsock.Record{Origin: logsock.Origin{Conn: 7, Pid: 6530, Remote: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 54321}},
		Msg: []byte(msg), Time: recTime}
}

func unixRecord(msg string) *logsock.Record {
	return &logsock.Record{Origin: logsock.Origin{Conn: 3, Pid: 991, PeerPid: 991, PeerUid: 0, PeerGid: 4,
		Remote: &net.UnixAddr{Name: "@", Net: "unix"}}, WriterPid: 998, Msg: []byte(msg), Time: recTime}
}

// v2Record makes rec a v2 client's: session 00..0f, tag svc, level err,
// number 17, logged 3 s before it was received.
func v2Record(rec *logsock.Record) *logsock.Record {
	for i := range rec.Session {
		rec.Session[i] = byte(i)
	}
	rec.Tag, rec.Seq, rec.Level, rec.Logged = "svc", 17, logsock.LevelError, rec.Time.Add(-3*time.Second)
	return rec
}

const (
	v2Session = "000102030405060708090a0b0c0d0e0f"
	v2Logged  = "2026-11-26T00:25:39.522835200Z"
)

func TestFormatLines(t *testing.T) {
	const ts = "2026-11-26T00:25:42.522835200Z"
	invalid := unixRecord("bad \xff\n")
	invalid.Flags = logsock.FlagInvalidUTF8 | logsock.FlagMixedWriters
	for _, tc := range []struct {
		name          string
		json, jsonMsg bool
		rec           *logsock.Record
		want          string
	}{
		{"json/tcp", true, false, tcpRecord(`started "x"` + "\n"),
			`{"time":"` + ts + `","run":"0123456789abcdef","conn":7,"pid":6530,"remote":"10.0.0.2:54321","msg":"started \"x\""}` + "\n"},
		{"json/unix", true, false, unixRecord("current pid: 998"),
			`{"time":"` + ts + `","run":"0123456789abcdef","conn":3,"pid":991,"peer_pid":991,"peer_uid":0,"peer_gid":4,"writer_pid":998,"msg":"current pid: 998"}` + "\n"},
		// Only one newline goes; the others are the message's.
		{"json/newlines", true, false, tcpRecord("a\n\n"),
			`{"time":"` + ts + `","run":"0123456789abcdef","conn":7,"pid":6530,"remote":"10.0.0.2:54321","msg":"a\n"}` + "\n"},
		{"json/invalid-utf8", true, false, invalid,
			`{"time":"` + ts + `","run":"0123456789abcdef","conn":3,"pid":991,"peer_pid":991,"peer_uid":0,"peer_gid":4,"writer_pid":998,` +
				`"flags":["invalid_utf8","mixed_writers"],"msg":"bad \ufffd","msg_base64":"YmFkIP8K"}` + "\n"},
		{"json-msg/object", true, true, tcpRecord("{\"level\": \"INFO\",\n \"n\": [1, 2]}\n"),
			`{"time":"` + ts + `","run":"0123456789abcdef","conn":7,"pid":6530,"remote":"10.0.0.2:54321","msg":{"level":"INFO","n":[1,2]}}` + "\n"},
		{"json-msg/not-an-object", true, true, tcpRecord(`{"level": `),
			`{"time":"` + ts + `","run":"0123456789abcdef","conn":7,"pid":6530,"remote":"10.0.0.2:54321","msg":"{\"level\": "}` + "\n"},
		{"json-msg/array", true, true, tcpRecord(`[1]`),
			`{"time":"` + ts + `","run":"0123456789abcdef","conn":7,"pid":6530,"remote":"10.0.0.2:54321","msg":"[1]"}` + "\n"},
		{"json/object-without-json-msg", true, false, tcpRecord(`{"a":1}`),
			`{"time":"` + ts + `","run":"0123456789abcdef","conn":7,"pid":6530,"remote":"10.0.0.2:54321","msg":"{\"a\":1}"}` + "\n"},
		{"text/tcp", false, false, tcpRecord("time=x level=INFO msg=\"started\"\n"),
			ts + ` run=0123456789abcdef conn=7 pid=6530 remote=10.0.0.2:54321 time=x level=INFO msg="started"` + "\n"},
		{"text/unix", false, false, unixRecord("current pid: 998"),
			ts + " run=0123456789abcdef conn=3 pid=991 peer=991 uid=0 gid=4 writer=998 current pid: 998\n"},
		// A v2 client's fields follow the receive time, where the tail
		// scan reads them (parseV2).
		{"json/v2", true, false, v2Record(tcpRecord("hello\n")),
			`{"time":"` + ts + `","client_time":"` + v2Logged + `","session":"` + v2Session + `","seq":17,"level":"err","tag":"svc",` +
				`"run":"0123456789abcdef","conn":7,"pid":6530,"remote":"10.0.0.2:54321","msg":"hello"}` + "\n"},
		{"text/v2", false, false, v2Record(unixRecord("hello")),
			ts + " client_time=" + v2Logged + " session=" + v2Session + "/17 level=err tag=svc run=0123456789abcdef conn=3 pid=991 peer=991 uid=0 gid=4 writer=998 hello\n"},
		{"text/invalid-utf8", false, false, invalid,
			ts + ` run=0123456789abcdef conn=3 pid=991 peer=991 uid=0 gid=4 writer=998 flags=invalid_utf8|mixed_writers bad \xff` + "\n"},
		{"text/escapes", false, false, tcpRecord("a\tb\r\nc\x1b[31m\\n\u0085\u2028é\n"),
			ts + ` run=0123456789abcdef conn=7 pid=6530 remote=10.0.0.2:54321 a` + "\t" + `b\r\nc\x1b[31m\n\u0085\u2028é` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestFormatter(tc.json, tc.jsonMsg)
			got := string(f.append(nil, tc.rec))
			if got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			if tc.json && !json.Valid([]byte(got)) {
				t.Errorf("not JSON: %s", got)
			}
			// Again, from the connection's cached fields.
			if again := string(f.append(nil, tc.rec)); again != got {
				t.Errorf("second record: %s", again)
			}
		})
	}
}

// TestConnCache: records of connections that alternate, and one that
// ended and was forgotten, each carry their own connection's fields.
func TestConnCache(t *testing.T) {
	f := newTestFormatter(true, false)
	a, b := tcpRecord("a"), unixRecord("b")
	for range 3 {
		for _, rec := range []*logsock.Record{a, b} {
			var got struct {
				Conn   uint64
				Remote string
			}
			if err := json.Unmarshal(f.append(nil, rec), &got); err != nil {
				t.Fatal(err)
			}
			if got.Conn != rec.Conn || got.Remote != remoteString(rec.Remote) {
				t.Errorf("record of conn %d: %+v", rec.Conn, got)
			}
		}
		f.conns.drop(a.Conn)
	}
	if len(f.conns.m) != 1 {
		t.Errorf("cache holds %d connections, want 1: the dropped one is gone", len(f.conns.m))
	}
}

func TestClock(t *testing.T) {
	var c clock
	base := time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC)
	for _, d := range []time.Duration{0, 1, 999999999, 1000000000, 1500000000, 1234567891, 86400e9 + 5000} {
		tm := base.Add(d).In(time.FixedZone("X", -7*3600))
		for _, digits := range []int{6, 9} {
			layout := "2006-01-02T15:04:05." + strings.Repeat("0", digits) + "Z"
			want := tm.UTC().Format(layout)
			if got := string(c.append(nil, tm, digits)); got != want {
				t.Errorf("%v, %d digits: %s, want %s", tm, digits, got, want)
			}
		}
	}
}

// TestFormatSessions: records of two sessions that alternate, at every
// level, each carry their own session's fields, and cost no allocation
// once each has been seen.
func TestFormatSessions(t *testing.T) {
	f := newTestFormatter(true, false)
	a, b := v2Record(tcpRecord("a")), v2Record(unixRecord("b"))
	b.Session[0], b.Tag = 0xff, "other"
	buf := make([]byte, 0, 4096)
	check := func() {
		for l := range logsock.LevelDebug + 1 {
			for _, rec := range []*logsock.Record{a, b} {
				rec.Level = l
				var got struct {
					Session, Level, Tag string
				}
				buf = f.append(buf[:0], rec)
				if err := json.Unmarshal(buf, &got); err != nil {
					t.Fatal(err)
				}
				if got.Session != hex.EncodeToString(rec.Session[:]) || got.Level != l.String() || got.Tag != rec.Tag {
					t.Fatalf("record of %s at %v: %+v", rec.Tag, l, got)
				}
			}
		}
	}
	check()
	n := testing.AllocsPerRun(10, func() {
		for l := range logsock.LevelDebug + 1 {
			a.Level, b.Level = l, l
			buf = f.append(f.append(buf[:0], a), b)
		}
	})
	if n != 0 {
		t.Errorf("%v allocations a round", n)
	}
	check()
}

// TestAppendUint: every number of digits, and their edges, as strconv
// writes them.
func TestAppendUint(t *testing.T) {
	vs := []uint64{0, math.MaxUint64}
	for p := uint64(1); p <= math.MaxUint64/10; p *= 10 {
		vs = append(vs, p-1, p, p+1, 10*p-1)
	}
	for _, v := range vs {
		want := strconv.AppendUint([]byte("seq="), v, 10)
		if got := appendUint([]byte("seq="), v); !bytes.Equal(got, want) {
			t.Errorf("%d: %s, want %s", v, got, want)
		}
	}
}

// FuzzJSONString: appendJSONString reads back, with encoding/json, as the
// string that encoding/json makes of the same bytes, and never writes a
// raw control character or an invalid byte.
func FuzzJSONString(f *testing.F) {
	for _, s := range []string{"", "plain ascii text of more than eight bytes", "\"\\\n\r\t\x00\x1f\x7f", "é\u2028\u2029𝄞", "\xff\xfe\xc3", "12345678\"2345678\xe2\x80"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, s []byte) {
		out := appendJSONString(nil, s)
		var got, want string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%q -> %s: %v", s, out, err)
		}
		ref, _ := json.Marshal(string(s))
		json.Unmarshal(ref, &want)
		if got != want {
			t.Fatalf("%q -> %s reads %q, encoding/json's %q", s, out, got, want)
		}
		if !utf8.Valid(out) || bytes.ContainsFunc(out, func(r rune) bool { return r < 0x20 }) {
			t.Fatalf("%q -> %q", s, out)
		}
	})
}

// FuzzText: appendText makes one line of valid UTF-8 with no control
// character but tab, and leaves printable text as it is.
func FuzzText(f *testing.F) {
	for _, s := range []string{"", "plain ascii text, \\ and \" and \t", "a\nb\r\x1b\x7f", "é\u0085\u2028𝄞", "\xff\xfe\xc3", "12345678\n2345678"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, s []byte) {
		out := appendText(nil, s)
		if !utf8.Valid(out) {
			t.Fatalf("%q -> %q: not UTF-8", s, out)
		}
		for _, r := range string(out) {
			if r < 0x20 && r != '\t' || r >= 0x7f && r < 0xa0 || r == '\u2028' || r == '\u2029' {
				t.Fatalf("%q -> %q: %U", s, out, r)
			}
		}
		printable := utf8.Valid(s) && !bytes.ContainsFunc(s, func(r rune) bool {
			return r < 0x20 && r != '\t' || r >= 0x7f && r < 0xa0 || r == '\u2028' || r == '\u2029'
		})
		if printable != bytes.Equal(out, s) {
			t.Fatalf("%q -> %q: printable %v", s, out, printable)
		}
	})
}

// BenchmarkFormat formats a record of 100 bytes from a TCP connection,
// a v1 client's and a v2 client's (its session, number, level, tag and
// time).
func BenchmarkFormat(b *testing.B) {
	for _, name := range []string{"json", "text", "json/v2", "text/v2"} {
		jsonOut, v2 := strings.HasPrefix(name, "json"), strings.HasSuffix(name, "v2")
		b.Run(name, func(b *testing.B) {
			f := newTestFormatter(jsonOut, false)
			rec := tcpRecord(strings.Repeat("x", 100))
			if v2 {
				rec = v2Record(rec)
			}
			buf := make([]byte, 0, 1<<10)
			b.ReportAllocs()
			for b.Loop() {
				buf = f.append(buf[:0], rec)
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}

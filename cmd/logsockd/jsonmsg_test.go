//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/logsock/logsock/internal/testenv"
)

// hostileMsg is a message for -json-msg, and whether it is embedded as
// an object; want, if set, is the embedded object's bytes.
type hostileMsg struct {
	name   string
	msg    string
	object bool
	want   string
}

// nest returns an object nested depth deep: {"a":{"a":...1...}}.
func nest(depth int) string {
	return strings.Repeat(`{"a":`, depth-1) + `{"a":1}` + strings.Repeat("}", depth-1)
}

// nestArrays returns an object holding arrays, depth deep in all.
func nestArrays(depth int) string {
	return `{"a":` + strings.Repeat("[", depth-1) + strings.Repeat("]", depth-1) + "}"
}

// manyKeys returns an object of n distinct names, and then last.
func manyKeys(n int, last string) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		b.WriteString(`"k` + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + strings.Repeat("y", i/26) + `":0,`)
	}
	b.WriteString(last + "}")
	return b.String()
}

// hostileMsgs are messages that jq 1.6, Python's json or a careful
// reader refuse or read differently, beside their valid neighbours. The
// process test of jq and Python runs them all.
var hostileMsgs = []hostileMsg{
	{"plain", `{"level":"INFO","n":[1,2.5e3,-0,true,false,null],"o":{}}`, true, ""},
	{"spaces", " \t{ \"a\" : [ 1 , { } ] }\r\n", true, `{"a":[1,{}]}`},
	{"empty", `{}`, true, ""},
	{"empty-message", ``, false, ""},
	{"array", `[1]`, false, ""},
	{"string", `"x"`, false, ""},
	{"number", `1`, false, ""},

	{"depth-64", nest(64), true, ""},
	{"depth-65", nest(65), false, ""},
	{"depth-3000", nest(3000), false, ""}, // issue 20
	{"arrays-64", nestArrays(64), true, ""},
	{"arrays-65", nestArrays(65), false, ""},
	{"arrays-100000", `{"a":` + strings.Repeat("[", 100000), false, ""},

	{"lone-high-surrogate", `{"k":"\ud800"}`, false, ""}, // issue 20
	{"lone-low-surrogate", `{"k":"\udc00"}`, false, ""},  // jq 1.6 makes it U+FFFD
	{"high-then-text", `{"k":"\ud800x"}`, false, ""},
	{"high-then-bmp", `{"k":"\ud800\u0041"}`, false, ""},
	{"high-high", `{"k":"\ud800\ud800"}`, false, ""},
	{"reversed-pair", `{"k":"\udc00\ud800"}`, false, ""},
	{"surrogate-in-name", `{"\udfff":1}`, false, ""},
	{"pair", `{"k":"\ud83d\ude00 \uDBFF\uDFFF"}`, true, ""},
	{"short-escape", `{"k":"\u12"}`, false, ""},
	{"bad-hex", `{"k":"\u12g4"}`, false, ""},
	{"bad-escape", `{"k":"\x41"}`, false, ""},
	{"escapes", `{"k":"\"\\\/\b\f\n\r\t\u0000\u001f\uffff\ufffe"}`, true, ""},

	{"overflow", `{"n":1e400}`, false, ""},
	{"negative-overflow", `{"n":-1.5E+309}`, false, ""},
	{"digits-5000", `{"n":` + strings.Repeat("9", 5000) + `}`, false, ""}, // Python: over 4,300 digits
	{"digits-309-over", `{"n":2` + strings.Repeat("0", 308) + `}`, false, ""},
	{"digits-309", `{"n":1` + strings.Repeat("0", 308) + `}`, true, ""},
	{"fraction-5000", `{"n":0.` + strings.Repeat("1", 5000) + `}`, true, ""},
	{"underflow", `{"n":1e-400}`, true, ""},
	{"float64-max", `{"n":1.7976931348623157e308}`, true, ""},
	{"big-int", `{"id":18446744073709551615}`, true, ""},
	{"NaN", `{"n":NaN}`, false, ""},
	{"nan", `{"n":nan}`, false, ""},
	{"Infinity", `{"n":Infinity}`, false, ""},
	{"minus-Infinity", `{"n":-Infinity}`, false, ""},
	{"leading-zero", `{"n":01}`, false, ""},
	{"bare-dot", `{"n":1.}`, false, ""},
	{"dot-first", `{"n":.5}`, false, ""},
	{"plus", `{"n":+1}`, false, ""},
	{"hex", `{"n":0x10}`, false, ""},
	{"exp-alone", `{"n":1e}`, false, ""},
	{"minus-alone", `{"n":-}`, false, ""},

	{"duplicate", `{"a":1,"a":2}`, false, ""},
	{"duplicate-escaped", `{"a":1,"\u0061":2}`, false, ""},
	{"duplicate-nested", `{"o":{"b":1,"c":2,"b":3}}`, false, ""},
	{"duplicate-many", manyKeys(100, `"ka":1`), false, ""},
	{"same-name-other-object", `{"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}]}`, true, ""},
	{"many-names", manyKeys(100, `"last":1`), true, ""},
	{"names-differ-by-escape", `{"a\n":1,"a":2,"a\\n":3}`, true, ""},

	{"bom-first", "\ufeff{\"k\":1}", false, ""},
	{"bom-inside", "{\"k\":\"\ufeff\"}", true, ""},
	{"invalid-utf8", "{\"k\":\"\xff\"}", false, ""},
	{"overlong-utf8", "{\"k\":\"\xc0\xaf\"}", false, ""},
	{"utf8-surrogate", "{\"k\":\"\xed\xa0\x80\"}", false, ""},
	{"raw-newline", "{\"k\":\"a\nb\"}", false, ""},
	{"raw-nul", "{\"k\":\"\x00\"}", false, ""},
	{"raw-control", "{\"k\":\"\x1b[31m\"}", false, ""},
	{"raw-del", "{\"k\":\"\x7f\"}", true, ""},
	{"line-separators", "{\"k\":\"a\u2028b\u2029c\"}", true, `{"k":"a\u2028b\u2029c"}`},
	{"non-ascii", `{"clé":"värde ☃ 𝄞"}`, true, ""},

	{"trailing-comma", `{"a":1,}`, false, ""},
	{"array-trailing-comma", `{"a":[1,]}`, false, ""},
	{"single-quotes", `{'a':1}`, false, ""},
	{"bare-name", `{a:1}`, false, ""},
	{"comment", `{"a":1 /* x */}`, false, ""},
	{"two-objects", `{}{}`, false, ""},
	{"trailing-text", `{"a":1} x`, false, ""},
	{"unclosed", `{"a":1`, false, ""},
	{"unclosed-string", `{"a":"`, false, ""},
	{"missing-colon", `{"a" 1}`, false, ""},
	{"missing-value", `{"a":}`, false, ""},
	{"truncated-literal", `{"a":tru}`, false, ""},
	{"literal-tail", `{"a":nulls}`, false, ""},
	{"vertical-tab-space", "{\"a\":1\v}", false, ""},
	{"nbsp-space", "{\"a\":1\u00a0}", false, ""},
}

// TestJSONMsg: -json-msg embeds each message that is an object every
// parser reads as the same value, compacted, and writes every other as a
// string; the line is JSON either way.
func TestJSONMsg(t *testing.T) {
	f := newTestFormatter(true, true)
	for _, tc := range hostileMsgs {
		t.Run(tc.name, func(t *testing.T) {
			line := f.append(nil, tcpRecord(tc.msg))
			var rec struct{ Msg json.RawMessage }
			if err := json.Unmarshal(line, &rec); err != nil {
				t.Fatalf("%.200q: %v", line, err)
			}
			object := rec.Msg[0] == '{'
			if object != tc.object {
				t.Fatalf("embedded %v, want %v: %.300s", object, tc.object, rec.Msg)
			}
			if !object {
				var s string
				if err := json.Unmarshal(rec.Msg, &s); err != nil || s != asJSONString(tc.msg) {
					t.Fatalf("msg %.200s (%v), want the message as a string", rec.Msg, err)
				}
				return
			}
			want := tc.want
			if want == "" {
				var b bytes.Buffer
				json.Compact(&b, []byte(tc.msg))
				want = b.String()
			}
			if string(rec.Msg) != want {
				t.Errorf("msg %.300s\nwant %.300s", rec.Msg, want)
			}
		})
	}
}

// asJSONString returns the string that msg's JSON msg reads as: one
// trailing newline dropped, each byte that is not UTF-8 U+FFFD.
func asJSONString(msg string) string {
	msg = string(trimNewline([]byte(msg)))
	var b strings.Builder
	for _, r := range msg { // a byte that is not UTF-8 comes as RuneError
		b.WriteRune(r)
	}
	return b.String()
}

// TestJSONMsgBuffers: a message with many names leaves no large buffer
// behind, and the parser works the same after it.
func TestJSONMsgBuffers(t *testing.T) {
	var p msgParser
	big := manyKeys(20000, `"last":1`)
	if _, ok := p.appendObject(nil, []byte(big)); !ok {
		t.Fatal("20,000 distinct names refused")
	}
	if cap(p.keys) > maxKeptKeys || cap(p.names) > maxKeptKeys/8 {
		t.Errorf("kept %d bytes of names and %d ends", cap(p.keys), cap(p.names))
	}
	if out, ok := p.appendObject([]byte("x"), []byte(`{"a" : 1}`)); !ok || string(out) != `x{"a":1}` {
		t.Errorf("then %q, %v", out, ok)
	}
}

// FuzzJSONMsg: what msgParser embeds, encoding/json reads as valid, as
// the same value as the message, with no name twice in an object and
// nothing nested deeper than maxMsgDepth; and it embeds a valid object
// that has none of the features it refuses.
func FuzzJSONMsg(f *testing.F) {
	for _, tc := range hostileMsgs {
		if len(tc.msg) < 1000 {
			f.Add([]byte(tc.msg))
		}
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		var p msgParser
		out, ok := p.appendObject([]byte("x"), msg)
		if !ok {
			if string(out) != "x" {
				t.Fatalf("%q refused, but wrote %q", msg, out)
			}
			if json.Valid(msg) && bytes.HasPrefix(bytes.TrimLeft(msg, " \t\r\n"), []byte("{")) && utf8.Valid(msg) &&
				!bytes.Contains(msg, []byte(`\u`)) && !bytes.ContainsAny(msg, "eE") && len(msg) < 300 &&
				bytes.Count(msg, []byte("{"))+bytes.Count(msg, []byte("[")) <= maxMsgDepth && !hasDuplicateNames(msg) {
				t.Fatalf("%q refused, but it is a plain object", msg)
			}
			return
		}
		out = out[1:]
		if !json.Valid(out) || !json.Valid(msg) {
			t.Fatalf("%q embedded as %q", msg, out)
		}
		var a, b any
		if json.Unmarshal(msg, &a) != nil || json.Unmarshal(out, &b) != nil || !reflect.DeepEqual(a, b) {
			t.Fatalf("%q embedded as %q, another value", msg, out)
		}
		if hasDuplicateNames(msg) {
			t.Fatalf("%q embedded with a name twice", msg)
		}
		if bytes.ContainsFunc(out, func(r rune) bool { return r < 0x20 || r == '\u2028' || r == '\u2029' }) {
			t.Fatalf("%q embedded as %q: a raw control or line separator", msg, out)
		}
	})
}

// hasDuplicateNames reports whether an object in the JSON value msg has
// a name twice, or is nested deeper than maxMsgDepth, by encoding/json's
// tokens.
func hasDuplicateNames(msg []byte) bool {
	type frame struct {
		names map[string]bool // nil for an array
		name  bool            // the next token is a name
	}
	var stack []*frame
	d := json.NewDecoder(bytes.NewReader(msg))
	for {
		tok, err := d.Token()
		if err != nil {
			return false
		}
		var top *frame
		if n := len(stack); n > 0 {
			top = stack[n-1]
		}
		delim, isDelim := tok.(json.Delim)
		switch {
		case isDelim && (delim == '}' || delim == ']'):
			stack = stack[:len(stack)-1]
			if n := len(stack); n > 0 && stack[n-1].names != nil {
				stack[n-1].name = true
			}
		case top != nil && top.name:
			name := tok.(string)
			if top.names[name] {
				return true
			}
			top.names[name], top.name = true, false
		case isDelim: // a value that opens a container
			fr := &frame{}
			if delim == '{' {
				fr.names, fr.name = map[string]bool{}, true
			}
			if stack = append(stack, fr); len(stack) > maxMsgDepth {
				return true
			}
		case top != nil && top.names != nil: // a value in an object
			top.name = true
		}
	}
}

// BenchmarkJSONMsg formats a record whose message is a slog JSON record
// of 150 bytes with -json-msg: embedded by msgParser, and, for a
// baseline, compacted by encoding/json.Compact, which -json-msg used
// before issue 20.
func BenchmarkJSONMsg(b *testing.B) {
	msg := []byte(`{"time":"2026-11-26T01:25:42.522835+01:00","level":"INFO","msg":"request done","method":"GET","status":200,"ms":1.5}`)
	b.Run("msgParser", func(b *testing.B) {
		f := newTestFormatter(true, true)
		rec := tcpRecord(string(msg))
		buf := make([]byte, 0, 1<<10)
		b.ReportAllocs()
		for b.Loop() {
			buf = f.append(buf[:0], rec)
		}
		b.SetBytes(int64(len(msg)))
	})
	b.Run("json.Compact", func(b *testing.B) {
		var out bytes.Buffer
		b.ReportAllocs()
		for b.Loop() {
			out.Reset()
			json.Compact(&out, msg)
		}
		b.SetBytes(int64(len(msg)))
	})
}

// strictPython reads JSON Lines as a careful consumer does: the bytes as
// UTF-8, no name twice in an object, no NaN or Infinity, no number that
// overflows to inf, no lone surrogate in a string; it prints each line's
// msg type, "dict" or "str".
const strictPython = `
import json, math, sys

def pairs(p):
    names = [k for k, _ in p]
    if len(set(names)) != len(names):
        raise ValueError("a name twice: %r" % names)
    return dict(p)

def constant(c):
    raise ValueError("not JSON: " + c)

def number(s):
    f = float(s)
    if math.isinf(f):
        raise ValueError("overflows: " + s)
    return f

def check(v):
    if isinstance(v, str):
        v.encode("utf-8")  # refuses a lone surrogate
    elif isinstance(v, dict):
        for k, x in v.items():
            check(k)
            check(x)
    elif isinstance(v, list):
        for x in v:
            check(x)

with open(sys.argv[1], encoding="utf-8", errors="strict") as f:
    for n, line in enumerate(f, 1):
        try:
            rec = json.loads(line, object_pairs_hook=pairs, parse_constant=constant, parse_float=number)
            check(rec)
        except Exception as e:
            sys.exit("line %d: %s: %.200r" % (n, e, line))
        print(type(rec["msg"]).__name__)
`

// TestLogsockdJSONMsgParsers: logsockd -json -json-msg given every hostile
// message: jq 1.6 (jq -c .) and Python's json, made strict, read every
// line of its file, each msg an object where TestJSONMsg embeds one and a
// string otherwise (issue 20: a 3,000-deep object and {"k":"\ud800"} made
// lines that jq and Python refused).
func TestLogsockdJSONMsgParsers(t *testing.T) {
	t.Parallel()
	jq := testenv.Jq(t)
	python := testenv.Python(t)
	out := filepath.Join(shortDir(t), "out.jsonl")
	d, addrs := startDaemon(t, "-json", "-json-msg", "-listen", "tcp://127.0.0.1:0", "-o", out)
	ls := dial(t, addrs[0], nil)
	for _, m := range hostileMsgs {
		if _, err := ls.Write([]byte(m.msg)); err != nil {
			t.Fatal(err)
		}
	}
	lines := waitFileLines(t, d, out, len(hostileMsgs))

	run := func(name string, args ...string) []string {
		t.Helper()
		cmd := exec.Command(name, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		b, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v: %s", cmd, err, stderr.Bytes())
		}
		return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	}
	// jq -c . must take the whole file; then the type of each msg.
	if got := run(jq, "-c", ".", out); len(got) != len(hostileMsgs) {
		t.Fatalf("jq -c . printed %d lines, want %d", len(got), len(hostileMsgs))
	}
	jqTypes := run(jq, "-r", ".msg | type", out)
	pyTypes := run(python, "-c", strictPython, out)
	if len(jqTypes) != len(hostileMsgs) || len(pyTypes) != len(hostileMsgs) {
		t.Fatalf("jq read %d lines, Python %d; want %d", len(jqTypes), len(pyTypes), len(hostileMsgs))
	}
	for i, m := range hostileMsgs {
		want := map[bool][2]string{true: {"object", "dict"}, false: {"string", "str"}}[m.object]
		if jqTypes[i] != want[0] || pyTypes[i] != want[1] {
			t.Errorf("%s: jq reads msg as %s, Python as %s; want %s: %.200s", m.name, jqTypes[i], pyTypes[i], want[0], lines[i])
		}
		var rec struct{ Msg any }
		if err := json.Unmarshal([]byte(lines[i]), &rec); err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
		if s, ok := rec.Msg.(string); ok && s != asJSONString(m.msg) {
			t.Errorf("%s: msg %.200q, want the message %.200q", m.name, s, m.msg)
		}
	}
	d.sigterm(t, 0)
}

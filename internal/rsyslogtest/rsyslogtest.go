//go:build unix

// Package rsyslogtest runs real rsyslogd processes for the tests and the
// bench (issue 12). Each Server is one rsyslogd in the foreground, with a
// configuration, work directory, pid file and output file of its own in a
// temporary directory. It reads octet-counted frames (RFC 6587) with imptcp
// on 127.0.0.1 only, or with StartWith's Options.TLS the same frames over
// TLS (RFC 5425) with imtcp and the gtls driver (Debian's rsyslog-gnutls),
// and writes every message, through a Template, to the output file. It
// loads no other input: no imuxsock, no imklog, so it
// neither takes /dev/log nor reads the kernel's log, and it is never the
// system's service.
//
// What a test can rely on. rsyslog rewrites control characters as it
// receives a message ("#011" for a tab) unless told not to; the
// configuration turns that off, and the dropping of a trailing LF too
// (parser.escapeControlCharactersOnReceive and
// parser.dropTrailingLFOnReception; imptcp has no setting of its own). Then
// MSG reaches the template as sent, byte for byte, non-ASCII, invalid UTF-8,
// a BOM, DEL and leading or trailing spaces included, with one exception:
// rsyslog 8.2302 still writes a NUL byte as the four bytes "#000". The Lines
// template escapes MSG as rsyslog's "json" property option does, so that a
// message holding LF stays on its line, and ParseLine undoes that escaping
// exactly. A message is cut where it passes 64 KiB with its header
// (maxMessageSize); the framing holds.
//
// It imports neither logsock nor testing: the bench, a module of its own
// under the same import path, runs rsyslogd with it too.
package rsyslogtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/logsock/logsock/internal/testenv"
)

// RequireEnv, set to 1 (as .ci/run does), makes Require fail a test where
// rsyslogd is missing, instead of skipping it.
const RequireEnv = "LOGSOCK_REQUIRE_RSYSLOG"

// ErrNotFound is returned by Lookup, Start and Require when there is no
// rsyslogd.
var ErrNotFound = errors.New("rsyslogtest: rsyslogd not found (Debian: apt-get install rsyslog)")

// searchPath is where Lookup looks after PATH: Debian installs rsyslogd in
// /usr/sbin, which is not in an ordinary user's PATH.
var searchPath = []string{"/usr/sbin/rsyslogd", "/sbin/rsyslogd"}

var lookup = sync.OnceValues(func() ([2]string, error) {
	path, err := exec.LookPath("rsyslogd")
	if err != nil {
		for _, p := range searchPath {
			if _, err2 := exec.LookPath(p); err2 == nil {
				path, err = p, nil
				break
			}
		}
	}
	if err != nil {
		return [2]string{}, fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "-v").Output()
	if err != nil {
		return [2]string{}, fmt.Errorf("rsyslogtest: %s -v: %w", path, err)
	}
	// "rsyslogd  8.2302.0 (aka 2023.02) compiled with:"
	f := strings.Fields(string(out))
	if len(f) < 2 || f[0] != "rsyslogd" {
		return [2]string{}, fmt.Errorf("rsyslogtest: %s -v printed %.80q, not a version", path, out)
	}
	return [2]string{path, f[1]}, nil
})

// ErrNoTLS is returned by LookupTLS, StartWith and RequireTLS when
// rsyslogd has no gtls driver.
var ErrNoTLS = errors.New("rsyslogtest: rsyslogd's gtls driver, lmnsd_gtls.so, not found (Debian: apt-get install rsyslog-gnutls)")

// moduleDirs are where distributions put rsyslog's modules.
var moduleDirs = []string{"/usr/lib/*/rsyslog", "/usr/lib/rsyslog", "/usr/lib64/rsyslog", "/usr/local/lib/rsyslog"}

// LookupTLS returns nil if rsyslogd's gtls driver is installed beside its
// other modules, or else an error wrapping ErrNoTLS. rsyslogd loads the
// driver only when a TLS listener starts (its -N1 check does not), and
// then fails with a message in its log: this finds out beforehand.
func LookupTLS() error {
	if _, _, err := Lookup(); err != nil {
		return err
	}
	for _, dir := range moduleDirs {
		if m, _ := filepath.Glob(filepath.Join(dir, "lmnsd_gtls.so")); len(m) > 0 {
			return nil
		}
	}
	return fmt.Errorf("%w in %s", ErrNoTLS, strings.Join(moduleDirs, ", "))
}

// Lookup returns the path of rsyslogd and its version ("8.2302.0"), or an
// error wrapping ErrNotFound. It looks once per process.
func Lookup() (path, version string, err error) {
	r, err := lookup()
	return r[0], r[1], err
}

// Require returns the path of rsyslogd, or skips the test when there is
// none; under LOGSOCK_REQUIRE_RSYSLOG=1 it fails it instead.
func Require(t testenv.TB) string {
	t.Helper()
	path, _, err := Lookup()
	require(t, err)
	return path
}

// RequireTLS is Require for rsyslogd with its gtls driver (LookupTLS).
func RequireTLS(t testenv.TB) {
	t.Helper()
	require(t, LookupTLS())
}

func require(t testenv.TB, err error) {
	t.Helper()
	if err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("%v (%s=1)", err, RequireEnv)
		}
		t.Skipf("%v", err)
	}
}

// A Template says how the output file shows each message, one line a
// message. Use Lines or JSON.
type Template struct {
	def string // rsyslog's template() statement, named tmplName
}

const tmplName = "logsock_out"

var (
	// Lines writes "PROCID MSG\n": the PROCID field as received ("-" for
	// none), a space, and MSG escaped as inside a JSON string. ParseLine
	// gives back both.
	Lines = Template{def: `template(name="` + tmplName + `" type="string" string="%procid% %msg:::json%\n")`}

	// JSON writes a JSON object a line with the keys time (the message's
	// TIMESTAMP, RFC 3339), host, pid (PROCID) and msg: the measure
	// of rsyslogd, "imptcp with octet-counted RFC 5424, JSON template,
	// omfile".
	JSON = Template{def: `template(name="` + tmplName + `" type="list" option.jsonf="on") {
	property(outname="time" name="timereported" dateFormat="rfc3339" format="jsonf")
	property(outname="host" name="hostname" format="jsonf")
	property(outname="pid" name="procid" format="jsonf")
	property(outname="msg" name="msg" format="jsonf")
}`}

	// Header writes a JSON object a line with the keys of JSON and those
	// of the header that a sender chooses: severity (a number, 0-7) and
	// app (APP-NAME).
	Header = Template{def: `template(name="` + tmplName + `" type="list" option.jsonf="on") {
	property(outname="time" name="timereported" dateFormat="rfc3339" format="jsonf")
	property(outname="severity" name="syslogseverity" format="jsonf")
	property(outname="app" name="app-name" format="jsonf")
	property(outname="pid" name="procid" format="jsonf")
	property(outname="msg" name="msg" format="jsonf")
}`}
)

// config returns rsyslogd's configuration. omfile keeps its defaults: no
// asynchronous writing, and a write at the end of each batch
// (flushOnTXEnd), so a line is in the file a few milliseconds after its
// message arrives. A larger ioBufferSize, asyncWriting or bigger queue
// batches did not raise the bench's rate (1M messages of 100 B: 1.04-1.08M
// records/s with the defaults, 0.5-1.17M with those, 3 runs each).
// Internal messages have no action, so rsyslogd writes them to its
// standard error, which the Server keeps for its errors.
//
// Over TLS the input is imtcp with the gtls driver (imptcp has no TLS),
// octet-counted framing on, as imtcp has it by default; the driver's files
// are global settings.
func config(workDir, out string, port int, opt Options) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# rsyslogtest: one test instance; nothing of the system's.
global(
	workDirectory=%q
	net.enableDNS="off"
	maxMessageSize="64k"
	parser.escapeControlCharactersOnReceive="off"
	parser.dropTrailingLFOnReception="off"
`, workDir)
	if t := opt.TLS; t != nil {
		fmt.Fprintf(&b, `	defaultNetstreamDriverCAFile=%q
	defaultNetstreamDriverCertFile=%q
	defaultNetstreamDriverKeyFile=%q
`, t.CAFile, t.CertFile, t.KeyFile)
	}
	b.WriteString(")\n")
	if opt.Ordered {
		b.WriteString("main_queue(queue.workerThreads=\"1\")\n")
	}
	fmt.Fprintf(&b, `%s
ruleset(name="logsock") {
	action(type="omfile" file=%q template=%q)
}
`, opt.Template.def, out, tmplName)
	if t := opt.TLS; t != nil {
		auth := "anon"
		if t.ClientAuth {
			auth = "x509/certvalid"
		}
		fmt.Fprintf(&b, `module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode=%q)
input(type="imtcp" address="127.0.0.1" port="%d" ruleset="logsock")
`, auth, port)
	} else {
		fmt.Fprintf(&b, `module(load="imptcp")
input(type="imptcp" address="127.0.0.1" port="%d" ruleset="logsock"
	supportOctetCountedFraming="on")
`, port)
	}
	return b.String()
}

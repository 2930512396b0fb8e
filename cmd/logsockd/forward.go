//go:build unix

package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/logsock/logsock"
)

const (
	// The schemes of -forward: syslog over TCP (RFC 6587's octet counting),
	// and over TLS (RFC 5425, the same frames inside TLS).
	schemeTCP = "syslog+tcp://"
	schemeTLS = "syslog+tls://"
	// defaultForwardBuffer is -forward-buffer's default: a 30 s outage of
	// the syslog server at the pace of issue 20's test (4 MiB held 2.2 s
	// of records, so 1.9 MB/s) takes 57 MB.
	defaultForwardBuffer = 64 << 20
	// defaultForwardTimeout is -forward-timeout's default: long enough
	// for a syslog server that holds back while its own queue is full,
	// short enough that the buffer holds what a dead one leaves behind.
	defaultForwardTimeout = 30 * time.Second
	// forwardMaxBackoff caps the wait between connection attempts: a
	// syslog server that is back gets the records at most a second later
	// (issue 20: the client's default cap, 5 s, dropped 44,000 records
	// after rsyslogd was back).
	forwardMaxBackoff = time.Second
	// writeSlack makes the forwarder's WriteTimeout longer than
	// -forward-timeout: see newSyslog.
	writeSlack = 5 * time.Second
	// syslogPri is <PRI>VERSION of a v1 record: facility user (1),
	// severity informational (6), 1*8+6 = 14, version 1. v1 records carry
	// no severity, and user is the facility of messages from user
	// processes (RFC 5424 §6.2.1). A v2 record's PRI is 8 plus its level.
	syslogPri = "<14>1 "
	// facilityUser is the user facility's part of a PRI, 1*8.
	facilityUser = 8
	// sdID is the structured data element's SD-ID: a private one needs
	// an enterprise number, and 32473 is the one reserved for
	// documentation (RFC 5612), for want of one of logsock's own.
	sdID = "logsock@32473"
	// sdRoom bounds what the header and the structured data add to a
	// message: a hostname of up to 255 bytes, an APP-NAME of up to 48,
	// an address and six numbers come to less than 700.
	sdRoom = 1024
	// maxAppName is APP-NAME's limit (RFC 5424 §6.2.5).
	maxAppName = 48
	// maxHostname is HOSTNAME's limit (RFC 5424 §6.2.4).
	maxHostname = 255
)

// forwardFlags are -forward and the flags that go with it.
type forwardFlags struct {
	url      string // -forward as given; "" for none
	addr     string // its host:port
	tls      bool   // syslog+tls://
	ca       string // -forward-ca: the authorities to trust; "": the system's
	cert     string // -forward-cert and -forward-key: the client's certificate
	key      string
	buffer   int
	timeout  time.Duration
	certSeen bool // one of -forward-ca, -cert or -key was given
}

func (f *forwardFlags) register(flags *flag.FlagSet) {
	flags.Func("forward", "send every record to a syslog server, RFC 5424 in octet-counted framing: syslog+tcp://HOST:PORT, or over TLS (RFC 5425) syslog+tls://HOST:PORT", func(s string) error {
		var err error
		f.url = s
		f.addr, f.tls, err = parseForward(s)
		return err
	})
	flags.IntVar(&f.buffer, "forward-buffer", defaultForwardBuffer, "bytes of messages the forwarder holds while the syslog server is slow or away; beyond, the oldest are dropped (and counted)")
	flags.DurationVar(&f.timeout, "forward-timeout", defaultForwardTimeout, "how long the syslog server may take nothing (no acknowledgement, or a window held at zero) before its connection is given up; a slower server is waited for")
	tlsFile := func(p *string) func(string) error {
		return func(s string) error { *p, f.certSeen = s, true; return nil }
	}
	flags.Func("forward-ca", "with syslog+tls://, a PEM file of the authorities that sign the syslog server's certificate (default: the system's)", tlsFile(&f.ca))
	flags.Func("forward-cert", "with syslog+tls://, a PEM file of the certificate logsockd presents to the syslog server (with -forward-key)", tlsFile(&f.cert))
	flags.Func("forward-key", "with syslog+tls://, the PEM file of -forward-cert's private key", tlsFile(&f.key))
}

// check checks the flags, once parsed.
func (f *forwardFlags) check() error {
	switch {
	case f.buffer <= 0:
		return fmt.Errorf("-forward-buffer %d: want a positive number of bytes", f.buffer)
	case f.timeout <= 0:
		return fmt.Errorf("-forward-timeout %v: want a positive duration", f.timeout)
	case f.certSeen && !f.tls:
		return fmt.Errorf("-forward-ca, -forward-cert and -forward-key go with -forward %sHOST:PORT", schemeTLS)
	case (f.cert == "") != (f.key == ""):
		return errors.New("-forward-cert and -forward-key go together")
	}
	return nil
}

// tlsConfig returns the forwarder's TLS configuration: TLS 1.2 at least,
// as RFC 9662 asks of syslog over TLS, the server's certificate checked
// against -forward-ca (or the system's authorities) for the host of
// -forward, and the client's certificate, if given.
func (f *forwardFlags) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.ca != "" {
		pool, err := loadCAs(f.ca)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if f.cert != "" {
		cert, err := tls.LoadX509KeyPair(f.cert, f.key)
		if err != nil {
			return nil, fmt.Errorf("-forward-cert %s, -forward-key %s: %w", f.cert, f.key, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// newSyslog returns the LogSocket that forwards to the syslog server of
// f; it connects on the first message.
func newSyslog(f *forwardFlags, maxFrame int) (*logsock.LogSocket, error) {
	cfg, err := f.config(maxFrame)
	if err != nil {
		return nil, err
	}
	return logsock.NewSyslog("tcp", f.addr, cfg)
}

// config returns the forwarder's LogSocket configuration. With it, and
// NewSyslog's framing, the forwarder
// brings the client's delivery properties: a bounded buffer with counted
// drops, reconnects with capped backoff and jitter, a peek before writing,
// a message whose write failed sent again whole. In batching mode a
// record costs its handler a copy and no system call. It holds up to
// -forward-buffer of messages, and drops the oldest beyond: a syslog
// server that is slow or away must not hold up the connections or the
// output.
//
// A connection that stalls is kept, not abandoned for a new one, until
// the syslog server has taken nothing for -forward-timeout: the kernel's
// TCP_USER_TIMEOUT, which on Linux (since 5.11) counts both data left
// unacknowledged and a window held at zero. The records that the server's
// kernel holds would be read after those of a new connection (issue 20:
// after a 10 s SIGSTOP of rsyslogd, with the client's WriteTimeout of 5 s,
// 31,627 records reached it after newer ones), and a new connection to a
// stalled server gains nothing. The write's own timeout is longer, so that
// the kernel decides; elsewhere than on Linux it is the bound.
func (f *forwardFlags) config(maxFrame int) (*logsock.Config, error) {
	cfg := &logsock.Config{
		Batching:     true,
		MaxFrame:     maxFrame + sdRoom,
		BufferBytes:  f.buffer,
		Overflow:     logsock.DropOldest,
		MaxBackoff:   forwardMaxBackoff,
		UserTimeout:  f.timeout,
		WriteTimeout: f.timeout + writeSlack,
	}
	if f.tls {
		var err error
		if cfg.TLS, err = f.tlsConfig(); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

// parseForward checks a -forward address and returns its host:port, and
// whether it is syslog over TLS.
func parseForward(s string) (hostport string, isTLS bool, err error) {
	hostport, ok := strings.CutPrefix(s, schemeTCP)
	if !ok {
		hostport, isTLS = strings.CutPrefix(s, schemeTLS)
	}
	host, port, serr := net.SplitHostPort(hostport)
	if !ok && !isTLS || serr != nil || host == "" || port == "" {
		return "", false, fmt.Errorf("forward address %q: want %sHOST:PORT or %sHOST:PORT", s, schemeTCP, schemeTLS)
	}
	return hostport, isTLS, nil
}

// checkAppName checks an APP-NAME: 1 to 48 printable US-ASCII characters,
// no space.
func checkAppName(s string) error {
	if s == "" || len(s) > maxAppName || strings.IndexFunc(s, notPrintUSASCII) >= 0 {
		return fmt.Errorf("app name %q: want 1 to %d printable ASCII characters, no space (RFC 5424 APP-NAME)", s, maxAppName)
	}
	return nil
}

func notPrintUSASCII(r rune) bool { return r < 33 || r > 126 }

// syslogHostname makes name a HOSTNAME: printable US-ASCII, at most 255
// characters, "-" (nil) if empty.
func syslogHostname(name string) string {
	name = strings.Map(func(r rune) rune {
		if notPrintUSASCII(r) {
			return '_'
		}
		return r
	}, name)
	if len(name) > maxHostname {
		name = name[:maxHostname]
	}
	if name == "" {
		return "-"
	}
	return name
}

// forwarder sends every record to a syslog server as an RFC 5424 message.
// The Server's handlers call record concurrently.
type forwarder struct {
	addr string
	w    *logsock.LogSocket
	run  string // this run's id, in every record's structured data; set before the first

	mu     sync.Mutex // guards the fields below
	buf    []byte
	host   []byte // " HOSTNAME "
	app    []byte // -app-name, a v1 record's APP-NAME
	logged clock  // for the v2 records' client times
	clock  clock
	conns  connCache   // each connection's structured data, without its "]"
	flags  [256][]byte // a record's flags as an SD-PARAM, formatted once for each value
	failed bool        // a Write has failed: logged once
}

func newForwarder(addr, hostname, appName string, w *logsock.LogSocket) *forwarder {
	f := &forwarder{addr: addr, w: w, host: []byte(" " + syslogHostname(hostname) + " "), app: []byte(appName)}
	f.conns.build = func(dst []byte, rec *logsock.Record) []byte { return appendSD(dst, rec, f.run) }
	return f
}

// record formats rec and hands it to the LogSocket, which queues it.
func (f *forwarder) record(rec *logsock.Record) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.buf = f.append(f.buf[:0], rec)
	// A message dropped for room is counted in Stats, not an error; an
	// error (one too large, or the LogSocket closed) is counted too.
	if _, err := f.w.Write(f.buf); err != nil && !f.failed {
		f.failed = true
		log.Printf("forward %s: %v (logged once; counted in SIGUSR1's errors)", f.addr, err)
	}
}

// append appends rec as an RFC 5424 message, without the octet count:
// <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID - [SD] MSG. For a v1 record,
// PRI is 14 (user.info), TIMESTAMP the collector's receive time and
// APP-NAME -app-name; for a v2 record (issue 19), PRI is 8 plus its level
// (facility user, the level as the severity), TIMESTAMP the client's time
// and APP-NAME its tag (printable ASCII without a space, 1-48 bytes, as
// APP-NAME's own rule). TIMESTAMP is in UTC, to the microsecond
// (TIME-SECFRAC has at most 6 digits); PROCID the writer's pid where
// known, the handshake pid otherwise; MSG the message's bytes as they
// came, a trailing newline too, with no BOM.
func (f *forwarder) append(dst []byte, rec *logsock.Record) []byte {
	if rec.Seq != 0 {
		dst = append(dst, '<')
		dst = strconv.AppendUint(dst, facilityUser+uint64(rec.Level), 10)
		dst = append(dst, ">1 "...)
		dst = f.logged.append(dst, rec.Logged, 6)
		dst = append(dst, f.host...)
		dst = append(dst, rec.Tag...)
	} else {
		dst = append(dst, syslogPri...)
		dst = f.clock.append(dst, rec.Time, 6)
		dst = append(dst, f.host...)
		dst = append(dst, f.app...)
	}
	dst = append(dst, ' ')
	pid := rec.WriterPid
	if pid == 0 {
		pid = rec.Pid
	}
	dst = strconv.AppendInt(dst, int64(pid), 10)
	dst = append(dst, " - "...)
	dst = append(dst, f.conns.get(rec)...)
	if rec.Seq != 0 {
		var num [20]byte
		dst = appendSDParam(dst, "seq", strconv.AppendUint(num[:0], rec.Seq, 10))
	}
	if rec.WriterPid != 0 {
		var num [20]byte
		dst = appendSDParam(dst, "writer_pid", strconv.AppendInt(num[:0], int64(rec.WriterPid), 10))
	}
	if rec.Flags != 0 {
		// Every record of a shared connection can carry FlagMixedWriters.
		if f.flags[rec.Flags] == nil {
			f.flags[rec.Flags] = appendSDParam(nil, "flags", []byte(rec.Flags.String()))
		}
		dst = append(dst, f.flags[rec.Flags]...)
	}
	dst = append(dst, ']')
	if msg := rec.Msg; len(msg) > 0 {
		dst = append(dst, ' ')
		dst = append(dst, msg...)
	}
	return dst
}

// appendSD appends the structured data element of rec's connection, all
// but its closing bracket: the run's id (if not ""), the connection id,
// the handshake pid, the remote address (TCP), the peer's credentials
// (Unix sockets on Linux), a v2 client's session (with each record's seq,
// the pair names a record across resends). Connection ids start at 1 in every run: a
// relay's file holds a "conn 2" of each run, told apart by run.
func appendSD(dst []byte, rec *logsock.Record, run string) []byte {
	dst = append(dst, "["+sdID...)
	if run != "" {
		dst = appendSDParam(dst, "run", []byte(run))
	}
	dst = appendSDParam(dst, "conn", strconv.AppendUint(nil, rec.Conn, 10))
	dst = appendSDParam(dst, "pid", strconv.AppendInt(nil, int64(rec.Pid), 10))
	if remote := remoteString(rec.Remote); remote != "" {
		dst = appendSDParam(dst, "remote", []byte(remote))
	}
	if rec.PeerPid != 0 {
		dst = appendSDParam(dst, "peer_pid", strconv.AppendInt(nil, int64(rec.PeerPid), 10))
		dst = appendSDParam(dst, "peer_uid", strconv.AppendUint(nil, uint64(rec.PeerUid), 10))
		dst = appendSDParam(dst, "peer_gid", strconv.AppendUint(nil, uint64(rec.PeerGid), 10))
	}
	if rec.Session != (logsock.SessionID{}) {
		dst = appendSDParam(dst, "session", []byte(rec.Session.String()))
	}
	return dst
}

// appendSDParam appends ` name="value"`, with '"', '\' and ']' escaped by
// a backslash (RFC 5424 §6.3.3).
func appendSDParam(dst []byte, name string, value []byte) []byte {
	dst = append(dst, ' ')
	dst = append(dst, name...)
	dst = append(dst, '=', '"')
	for _, c := range value {
		if c == '"' || c == '\\' || c == ']' {
			dst = append(dst, '\\')
		}
		dst = append(dst, c)
	}
	return append(dst, '"')
}

// connClosed forgets connection id.
func (f *forwarder) connClosed(id uint64) {
	f.mu.Lock()
	f.conns.drop(id)
	f.mu.Unlock()
}

// Close delivers what the LogSocket holds, for up to its CloseTimeout, and
// says how much it could not.
func (f *forwarder) Close() error {
	err := f.w.Close()
	if errors.Is(err, logsock.ErrUndelivered) {
		return fmt.Errorf("forward %s: %w", f.addr, err)
	}
	return err
}

//go:build unix

package main

import (
	"errors"
	"fmt"
	"log"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/logsock/logsock"
)

const (
	// forwardScheme is the one scheme of -forward.
	forwardScheme = "syslog+tcp://"
	// syslogPri is <PRI>VERSION: facility user (1), severity
	// informational (6), 1*8+6 = 14, version 1. logsock's records carry
	// no severity, and user is the facility of messages from user
	// processes (RFC 5424 §6.2.1).
	syslogPri = "<14>1 "
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

// newSyslog returns the LogSocket that forwards to the syslog server at
// addr (host:port); it connects on the first message. With OctetCounted
// framing it brings the client's delivery properties: a bounded buffer
// with counted drops, reconnects with capped backoff and jitter, a peek
// before writing, a message whose write failed sent again whole. In
// batching mode a record costs its handler a copy and no system call. It
// holds up to bufferBytes of messages, and drops the oldest beyond: a
// syslog server that is slow or away must not hold up the connections or
// the output.
func newSyslog(addr string, maxFrame, bufferBytes int) (*logsock.LogSocket, error) {
	return logsock.New("tcp", addr, &logsock.Config{
		Framing:     logsock.OctetCounted,
		Batching:    true,
		MaxFrame:    maxFrame + sdRoom,
		BufferBytes: bufferBytes,
		Overflow:    logsock.DropOldest,
	})
}

// parseForward checks a -forward address and returns its host:port.
func parseForward(s string) (string, error) {
	hostport, ok := strings.CutPrefix(s, forwardScheme)
	if !ok {
		return "", fmt.Errorf("forward address %q: want %sHOST:PORT", s, forwardScheme)
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil || host == "" || port == "" {
		return "", fmt.Errorf("forward address %q: want %sHOST:PORT", s, forwardScheme)
	}
	return hostport, nil
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
	head   []byte // " HOSTNAME APP-NAME "
	clock  clock
	conns  connCache   // each connection's structured data, without its "]"
	flags  [256][]byte // a record's flags as an SD-PARAM, formatted once for each value
	failed bool        // a Write has failed: logged once
}

func newForwarder(addr, hostname, appName string, w *logsock.LogSocket) *forwarder {
	f := &forwarder{addr: addr, w: w, head: []byte(" " + syslogHostname(hostname) + " " + appName + " ")}
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
// <14>1 TIMESTAMP HOSTNAME APP-NAME PROCID - [SD] MSG. TIMESTAMP is the
// collector's receive time in UTC, to the microsecond (TIME-SECFRAC has
// at most 6 digits); PROCID the writer's pid where known, the handshake
// pid otherwise; MSG the message's bytes as they came, a trailing newline
// too, with no BOM.
func (f *forwarder) append(dst []byte, rec *logsock.Record) []byte {
	dst = append(dst, syslogPri...)
	dst = f.clock.append(dst, rec.Time, 6)
	dst = append(dst, f.head...)
	pid := rec.WriterPid
	if pid == 0 {
		pid = rec.Pid
	}
	dst = strconv.AppendInt(dst, int64(pid), 10)
	dst = append(dst, " - "...)
	dst = append(dst, f.conns.get(rec)...)
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
// (Unix sockets on Linux). Connection ids start at 1 in every run: a
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

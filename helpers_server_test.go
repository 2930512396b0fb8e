package logsock_test

// The helpers of the Server's tests that feed it raw bytes and check how
// its connections end.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/logsocktest"
)

// le is v as a little-endian length or pid.
func le(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

// cat joins stream parts, of type []byte or string.
func cat(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch p := p.(type) {
		case []byte:
			b = append(b, p...)
		case string:
			b = append(b, p...)
		default:
			panic(fmt.Sprintf("cat: %T", p))
		}
	}
	return b
}

// frameOf is one frame, without a handshake.
func frameOf(msg string) []byte {
	b := logsock.AppendFrame(nil, logsock.LittleEndian, []byte(msg))
	return b
}

// hostileServer serves a connLog on network with the hostile tests'
// limit, and opens a bystander beside it.
func hostileServer(t *testing.T, network string, config func(*logsock.Server)) (*connLog, *logsock.Server, string, *bystander) {
	t.Helper()
	log := newConnLog()
	srv := log.Server()
	srv.MaxFrame = hostileMaxFrame
	if config != nil {
		config(srv)
	}
	addr := logsocktest.Serve(t, network, srv)
	return log, srv, addr, newBystander(t, log, network, addr)
}

// endOf picks out the end of client connection c by its address (TCP).
func endOf(c net.Conn) func(logsock.ConnInfo) bool {
	return func(i logsock.ConnInfo) bool {
		return i.Remote != nil && c.LocalAddr() != nil && i.Remote.String() == c.LocalAddr().String()
	}
}

func checkEnd(t *testing.T, end connEnd, reason logsock.Reason, want error, quote string) {
	t.Helper()
	if end.info.Reason != reason {
		t.Errorf("reason %v (%v), want %v", end.info.Reason, end.err, reason)
	}
	switch {
	case want == nil && end.err != nil:
		t.Errorf("error %v, want nil", end.err)
	case want == errAny && end.err == nil:
		t.Errorf("no error, want one")
	case want != nil && want != errAny && !errors.Is(end.err, want):
		t.Errorf("error %v, want %v", end.err, want)
	}
	var pe *logsock.ProtocolError
	if reason == logsock.ReasonBadLength || reason == logsock.ReasonFrameTooLarge || reason == logsock.ReasonTruncated {
		if !errors.As(end.err, &pe) {
			t.Errorf("error %v is not a *ProtocolError", end.err)
		}
	}
	if quote != "" && (end.err == nil || !strings.Contains(end.err.Error(), quote)) {
		t.Errorf("error %q does not quote %s", end.err, quote)
	}
}

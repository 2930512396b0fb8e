package logsock_test

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/logsocktest"
)

// BenchmarkServerIngest: a Server reads 100-byte frames that one client
// writes as fast as it can, over TCP and over a Unix socket (where each
// read also brings its writer's pid, SO_PASSCRED, on Linux); in v1, and
// in v2 (issue 19), where the client reads the acknowledgements.
func BenchmarkServerIngest(b *testing.B) {
	msg := bytes.Repeat([]byte("x"), 100)
	var chunk []byte
	for range 64 << 10 / (len(msg) + logsock.HeaderLen) {
		chunk = logsock.AppendFrame(chunk, logsock.LittleEndian, msg)
	}
	frames := len(chunk) / (len(msg) + logsock.HeaderLen)
	for _, network := range []string{"tcp", "unix"} {
		b.Run(network, func(b *testing.B) {
			ingest(b, network, logsock.AppendHandshake(nil, logsock.LittleEndian, 1), func(int) []byte { return chunk }, frames)
		})
	}
	// v2's chunks carry their frames' numbers: each is made anew.
	const frames2 = 64 << 10 / (100 + 17)
	buf := make([]byte, 0, frames2*(len(msg)+17))
	seq := uint64(0)
	chunk2 := func(int) []byte {
		buf = buf[:0]
		for range frames2 {
			seq++
			buf = logsock.AppendFrame2(buf, logsock.LittleEndian, seq, 0, 6, msg)
		}
		return buf
	}
	for _, network := range []string{"tcp", "unix"} {
		b.Run("v2/"+network, func(b *testing.B) {
			seq = 0
			hello := logsock.AppendHello(nil, logsock.LittleEndian, 1, newSession(b), 1, "bench")
			ingest(b, network, hello, chunk2, frames2)
		})
	}
}

// ingest runs one of BenchmarkServerIngest's cases: a client that opens
// with hs and writes chunks of frames frames each.
func ingest(b *testing.B, network string, hs []byte, chunk func(int) []byte, frames int) {
	seen, done := 0, make(chan struct{})
	srv := &logsock.Server{Handler: func(*logsock.Record) {
		if seen++; seen == b.N {
			close(done)
		}
	}}
	addr := logsocktest.Serve(b, network, srv)
	c := logsocktest.RawConn(b, network, addr, hs)
	go io.Copy(io.Discard, c) // v2's hello and acknowledgements
	b.SetBytes(100)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	go func() {
		for sent := 0; sent < b.N; sent += frames {
			if _, err := c.Write(chunk(sent)); err != nil {
				return
			}
		}
	}()
	<-done
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "frames/s")
	b.StopTimer()
	c.Close()
}
